"""seg_ros.bag's message layer, ROS-free (rosbags): the shipped SegmentationInfo interface
round-trips through CDR, and a header stamp is read from raw CDR without deserialising."""

from __future__ import annotations

import numpy as np
import pytest

from seg_ros.bag import IMAGE, BagError, header_stamp_ns, typestore


def test_typestore_knows_the_shipped_interface() -> None:
    """msg/*.msg are registered: a SegmentationInfo round-trips through CDR in rosbags."""
    ts = typestore()
    info = ts.types["seg_ros/msg/SegmentationInfo"]
    header = ts.types["std_msgs/msg/Header"](ts.types["builtin_interfaces/msg/Time"](1, 2), "")
    color = ts.types["std_msgs/msg/ColorRGBA"]
    msg = info(header, "tiny", "onnxruntime cpu", ["Road"], [color(0.5, 0.25, 0.5, 1.0)],
               np.array([True]), 180, 240, "mono8")
    raw = ts.serialize_cdr(msg, "seg_ros/msg/SegmentationInfo")
    back = ts.deserialize_cdr(raw, "seg_ros/msg/SegmentationInfo")
    assert back.class_names == ["Road"] and back.colors[0].g == 0.25
    assert back.input_width == 240 and back.labels_encoding == "mono8"


def test_header_stamp_from_raw_cdr() -> None:
    ts = typestore()
    stamp = ts.types["builtin_interfaces/msg/Time"](1_699_999_999, 123)
    header = ts.types["std_msgs/msg/Header"](stamp, "cam")
    image = ts.types["sensor_msgs/msg/Image"](header, 2, 2, "mono8", 0, 2,
                                              np.zeros(4, np.uint8))
    assert header_stamp_ns(ts.serialize_cdr(image, IMAGE)) == 1_699_999_999_000_000_123
    with pytest.raises(BagError, match="too short"):
        header_stamp_ns(b"\x00\x01\x00\x00")
