import sys

from seg_ros.cli import main

sys.exit(main())
