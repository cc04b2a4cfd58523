"""Running a node process: rclpy.init, start, spin until SIGINT / SIGTERM, shut down within
bounds, with one line (no traceback) and an exit code for each way it can end."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from seg_ros.errors import ParameterTypeError, is_user_error
from seg_ros.ros import memory
from seg_ros.ros.workers import EXIT_WORKER_DIED

NODE_NAME = "segmentation_node"


def _ros_args_error(e: Exception) -> str:
    """rcl's argument-parsing error cut to one line that names the fix."""
    text = re.sub(r", at /\S+:\d+", "", str(e)).replace("failed to initialize rcl: ", "")
    text = " ".join(text.split())
    return (f"invalid ROS arguments: {text}; write -p name:=value, --params-file FILE (valid "
            "ROS 2 parameter YAML), --log-level debug|info|warn|error|fatal")


def start(make: Callable[[], Any], name: str = NODE_NAME) -> Any:
    """The node ``make()`` returns, or the exit code when it cannot start (one line on
    stderr, no traceback)."""
    try:
        return make()
    except BaseException as e:  # KeyboardInterrupt too: SIGINT while the model loads
        interrupted = isinstance(e, KeyboardInterrupt | ExternalShutdownException) or (
            not rclpy.ok())
        rclpy.try_shutdown()
        if interrupted:
            print(f"[{name}] interrupted while starting: exiting", file=sys.stderr, flush=True)
            return 0
        if not is_user_error(e):
            raise
        print(f"[{name}] error: {e}", file=sys.stderr, flush=True)
        return 2 if isinstance(e, ParameterTypeError) else 1


def run(make: Callable[[], Any], args: list[str] | None, name: str = NODE_NAME) -> int:
    """rclpy.init, start the node, spin until SIGINT/SIGTERM, shut down within bounds.

    Returns 0 on a clean shutdown (also when interrupted while starting), 1 when the node cannot
    start, 2 for malformed ROS arguments or a parameter of the wrong type (one line each naming
    the fix), 70 when a worker thread
    died. A worker still inside the engine after 5 s is not waited for.
    """
    memory.keep_large_buffers()  # before rclpy allocates: image buffers stay in the heap
    try:
        rclpy.init(args=args)  # installs SIGINT/SIGTERM handlers that shut the context down
    except Exception as e:
        print(f"[{name}] error: {_ros_args_error(e)}", file=sys.stderr, flush=True)
        return 2
    node = start(make, name)
    if isinstance(node, int):
        return node
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()
    rc = EXIT_WORKER_DIED if node.fatal else 0
    try:
        if not node.close():
            print(f"[{name}] a worker is still inside the engine after 5 s: exiting without "
                  "waiting for it", file=sys.stderr, flush=True)
            os._exit(rc)  # tearing rclpy and the engine down under a running thread can abort
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        sys.stderr.flush()
        os._exit(rc)
    return rc
