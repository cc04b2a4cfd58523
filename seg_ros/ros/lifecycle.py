"""The managed (lifecycle) segmentation node, for bring-up by Nav2's lifecycle_manager.

    ros2 run seg_ros segmentation_lifecycle_node      (or: seg-ros node --lifecycle)

unconfigured -> configure (parameters read and checked, model loaded, engine warmed up, label
info published; a failure logs the reason and returns to unconfigured) -> activate (image and
camera_info subscriptions on, workers started) -> deactivate (no frames taken, nothing
published, the engine kept) -> cleanup (engine freed) -> shutdown. Parameters are declared at
construction, so they can be set (model_path included) while unconfigured. The work is the
plain node's (seg_ros.ros.node.SegmentationCore); only the order of its phases differs.
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from seg_ros.errors import is_user_error
from seg_ros.ros.node import NODE_NAME, SegmentationCore
from seg_ros.ros.runner import run

LIFECYCLE_EXECUTABLE = "segmentation_lifecycle_node"


class SegmentationLifecycleNode(SegmentationCore, LifecycleNode):
    """SegmentationCore driven by lifecycle transitions (see the module docstring)."""

    managed = True  # start-up parameters may change while unconfigured (read at configure)

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        LifecycleNode.__init__(self, node_name, **kwargs)
        self._build()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as e:  # a bad parameter or model: back to unconfigured, with why
            why = str(e) if is_user_error(e) else f"{type(e).__name__}: {e}"
            self.get_logger().error(f"configure failed: {why}")
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: {self.card.name} [{self.engine.describe()}]")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("deactivated: not taking images (engine kept)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        self.get_logger().info("cleaned up: engine freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS


def main(args: list[str] | None = None) -> int:
    """``ros2 run seg_ros segmentation_lifecycle_node``: the managed node, unconfigured."""
    return run(SegmentationLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
