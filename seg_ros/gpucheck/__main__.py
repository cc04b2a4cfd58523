"""`python -m seg_ros.gpucheck`: the same as `seg-ros gpu-check`."""

import sys

from seg_ros.gpucheck import main

sys.exit(main())
