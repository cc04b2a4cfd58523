"""`seg-ros gpu-check` (the same as `make gpu-check`): every GPU backend this machine has, end to
end on CamVid val, in one table; without a GPU each row says "not available" and it exits 0.

It runs benchmarks/gpu_check.py of the seg_ros checkout this package is installed from (the
node harness and timing code live there), so it needs that checkout: `pip install -e .` /
`make setup`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seg_ros.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=100, help="CamVid val frames (default 100)")
    p.add_argument("--skip-node", action="store_true", help="no node end-to-end runs")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")


def run(args: argparse.Namespace) -> int:
    if not (CHECKOUT / "benchmarks" / "gpu_check.py").is_file():
        raise ConfigError(f"gpu-check runs from a seg_ros checkout (benchmarks/), and this "
                          f"seg_ros is installed from {CHECKOUT}: clone the repository and run "
                          "`make gpu-check` there")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    from benchmarks import gpu_check

    argv = ["--frames", str(args.frames), *(["--skip-node"] if args.skip_node else []),
            *(["--json", str(args.json)] if args.json else [])]
    return gpu_check.main(argv)
