"""Header stamps as integer nanoseconds since the epoch: the key that matches a frame's outputs
to the frame. rclpy and rosbags messages alike carry ``stamp.sec`` / ``stamp.nanosec``."""

from __future__ import annotations

from typing import Any


def stamp_ns(header: Any) -> int:
    """``header.stamp`` (a std_msgs/Header, rclpy or rosbags) in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
