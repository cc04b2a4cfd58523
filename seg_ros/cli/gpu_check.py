"""`seg-ros gpu-check` (the same as `make gpu-check`): every GPU backend this machine has, end to
end on CamVid val, in one table; without a GPU each row says "not available" and it exits 0.
The check itself is :mod:`seg_ros.gpucheck`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from seg_ros.gpucheck import add_arguments as gpucheck_arguments

    gpucheck_arguments(p)


def run(args: argparse.Namespace) -> int:
    from seg_ros.gpucheck import run as gpucheck_run

    return gpucheck_run(args)
