"""`seg-ros node [--lifecycle] [--params-file YAML] [--ros-args ...]`: run the segmentation node.

The same node as ``ros2 run seg_ros segmentation_node`` (``--lifecycle``: the managed node of
``segmentation_lifecycle_node``); everything after ``--ros-args`` is passed to ROS unchanged
(``-p name:=value``, ``-r from:=to``, ``--log-level``, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seg_ros.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lifecycle", action="store_true",
                   help="the managed (lifecycle) node: starts unconfigured, for Nav2's "
                   "lifecycle_manager")
    p.add_argument("--params-file", help="node parameters as ROS 2 YAML (e.g. config/camvid.yaml)")
    p.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[],
                   help="ROS arguments, passed on unchanged (must come last)")


def ros_argv(params_file: str | None, ros_args: list[str]) -> list[str]:
    """The argv rclpy.init gets: the params file first, so ``-p`` overrides win."""
    argv = ["seg-ros-node"]
    if params_file or ros_args:
        argv.append("--ros-args")
    if params_file:
        path = Path(params_file)
        if not path.is_file():
            raise ConfigError(f"--params-file {path} does not exist: check the path")
        argv += ["--params-file", str(path.resolve())]
    return argv + list(ros_args)


def run(args: argparse.Namespace) -> int:
    if args.lifecycle:
        from seg_ros.ros.lifecycle import main
    else:
        from seg_ros.ros.node import main

    return main(ros_argv(args.params_file, args.ros_args))
