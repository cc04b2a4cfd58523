"""What the label ids mean, latched (transient-local) before the first label image:
``~/label_info`` (seg_ros/msg/SegmentationInfo: names, colours, traversable classes, engine)
and, where vision_msgs is importable, ``~/label_info/vision`` (vision_msgs/LabelInfo: class_map
of class_id + class_name and the confidence threshold), the message Nav2's semantic
segmentation layer and vision pipelines read.
"""

from __future__ import annotations

from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA

try:  # the generated interface is optional: a source tree without it built still segments
    from seg_ros.msg import SegmentationInfo
except ImportError:  # pragma: no cover - depends on the install
    SegmentationInfo = None  # type: ignore[misc, assignment]

try:  # on robots with vision_msgs installed (no PyPI wheel: `make ros-tools` builds it)
    from vision_msgs.msg import LabelInfo, VisionClass
    VISION_MSGS_MISSING = ""
except ImportError as _e:
    LabelInfo = VisionClass = None
    VISION_MSGS_MISSING = str(_e)  # said once at start: ~/label_info/vision is off

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class LabelInfoPublishers:
    """The latched label-info topics of ``node``; :meth:`publish` after each (re)configure."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.info_pub = self.vision_pub = None
        if SegmentationInfo is None:
            node.get_logger().warning(
                "seg_ros.msg (the generated SegmentationInfo interface) is not importable: "
                "~/label_info is disabled (build the package with colcon, or run "
                "scripts/build_msgs.sh in a venv)")
        else:
            self.info_pub = node.create_publisher(SegmentationInfo, "~/label_info", LATCHED)
        if LabelInfo is not None:
            self.vision_pub = node.create_publisher(LabelInfo, "~/label_info/vision", LATCHED)
        else:
            node.get_logger().warning(
                "~/label_info/vision (vision_msgs/LabelInfo, read by Nav2's semantic "
                f"segmentation layer) is off: vision_msgs is not importable "
                f"({VISION_MSGS_MISSING}); install ros-$ROS_DISTRO-vision-msgs (rosdep install "
                "--from-paths src) and restart the node")

    def publish(self, card: Any, engine: str, labels_encoding: str, threshold: float) -> None:
        stamp = self.node.get_clock().now().to_msg()
        if self.info_pub is not None:
            self.info_pub.publish(segmentation_info(card, engine, labels_encoding, stamp))
        if self.vision_pub is not None:
            msg = LabelInfo(class_map=[VisionClass(class_id=i, class_name=n)
                                       for i, n in enumerate(card.class_names)],
                            threshold=float(threshold))
            msg.header.stamp = stamp
            self.vision_pub.publish(msg)


def segmentation_info(card: Any, engine: str, labels_encoding: str, stamp: Any) -> Any:
    """seg_ros/msg/SegmentationInfo of a model card."""
    msg = SegmentationInfo()
    msg.header.stamp = stamp
    msg.model_name = card.name
    msg.engine = engine
    msg.class_names = list(card.class_names)
    msg.colors = [ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
                  for r, g, b in card.colors]
    trav = set(card.traversable)
    msg.traversable = [i in trav for i in range(card.num_classes)]
    msg.input_height, msg.input_width = (int(v) for v in card.input_size)
    msg.labels_encoding = labels_encoding
    return msg
