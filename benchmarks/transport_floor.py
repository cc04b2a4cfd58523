"""The transport floor: what moving one camera image in and four outputs out costs in rclpy.

``python -m benchmarks.transport_floor --ros-args -r image:=/bench/image`` starts a node named
``segmentation_node`` that does no pixel work at all: its intake thread (the node's own
:mod:`seg_ros.ros.intake`) takes each Image and publishes, with that image's header, four
pre-built outputs of the node's sizes (labels and confidence mono8, colour mask and overlay
rgb8, at the input size). bench_node measures it exactly like the real node; stamp -> last
output through it is the least any rclpy node publishing these outputs can add to its engine
on this machine, so ``(engine + floor) / engine`` bounds ``node_overhead_ratio`` from below.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.ros import intake
    from seg_ros.ros.convert import to_image_msg
    from seg_ros.ros.memory import keep_large_buffers

    keep_large_buffers()  # as the node does
    rclpy.init(args=args)
    node = Node("segmentation_node")
    out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)  # the node's
    shapes = {"labels": ((), "mono8"), "confidence": ((), "mono8"),
              "color_mask": ((3,), "rgb8"), "overlay": ((3,), "rgb8")}
    pubs = {name: node.create_publisher(Image, f"~/{name}", out_qos) for name in shapes}
    built: dict[tuple[int, int], dict[str, Any]] = {}

    def relay(msg: Image) -> None:
        size = (msg.height, msg.width)
        if size not in built:
            built[size] = {name: to_image_msg(np.zeros(size + extra, np.uint8), enc, Header())
                           for name, (extra, enc) in shapes.items()}
        for name, out in built[size].items():
            out.header = msg.header
            pubs[name].publish(out)

    group = intake.OwnThreadGroup()
    sub = node.create_subscription(Image, "image", relay, qos_profile_sensor_data,
                                   callback_group=group)
    taker = intake.Intake(sub, node.context, relay, lambda e: print(e, file=sys.stderr))
    taker.start()
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        rclpy.spin(node)  # nothing on the executor: the intake thread relays
    taker.close()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
