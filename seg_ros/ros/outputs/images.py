"""What the image outputs share: one publisher per topic and camera (~/labels, or ~/c/labels
with several cameras; reliable, depth 1), which of them anybody wants, publication in arrival
order (seg_ros.pipeline.OutputOrder) with the frame's header, and the encoders (raw Image,
PNG / JPEG CompressedImage; compressed forms follow their raw output's switch).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from seg_ros import codec
from seg_ros.intrinsics import parse_output_size
from seg_ros.ros import convert
from seg_ros.ros.outputs.base import FrameResult, OutputBase

QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class ImageOutput(OutputBase):
    """An output of image topics (``topics``: raw first, then its compressed form if any)."""

    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.pubs = {(cam.name, t): host.create_publisher(
            CompressedImage if t.endswith("/compressed") else Image, f"~/{cam.prefix}{t}", QOS)
            for cam in host.camera_list for t in self.topics}

    def on(self, live: Any) -> bool:
        """Switched on (its publish_* parameter)."""
        return True

    def want(self, cam: Any, topic: str, live: Any) -> bool:
        return self.on(live) and self.pubs[(cam.name, topic)].get_subscription_count() > 0

    def wanted(self, cam: Any, live: Any) -> bool:
        return any(self.want(cam, t, live) for t in self.topics)

    def expected(self, live: Any) -> list[str]:
        return [cam.prefix + t for cam in self.host.camera_list for t in self.topics
                if self.want(cam, t, live)]

    def send(self, frame: FrameResult, topic: str, msg: Any) -> None:
        """Publish one topic in arrival order (see OutputOrder; workers > 1)."""
        cam = frame.camera
        with frame.timer("publish"), cam.order.turn(topic, frame.seq):
            self.pubs[(cam.name, topic)].publish(msg)
        stats = self.host.stats
        stats.computed[topic] = stats.computed.get(topic, 0) + 1
        self.host.watchdog.published(cam.prefix + topic)

    def picture(self, frame: FrameResult, rgb: np.ndarray) -> None:
        """An rgb8 picture on the raw topic and as JPEG (jpeg_quality) on the compressed one."""
        raw, jpeg = self.topics
        if self.want(frame.camera, raw, frame.live):
            self.send(frame, raw, image(rgb, "rgb8", frame.header))
        if self.want(frame.camera, jpeg, frame.live):
            with frame.timer("render"):
                msg = compressed(rgb, "jpeg", frame.live.jpeg_quality, frame.header)
            self.send(frame, jpeg, msg)


def image(array: np.ndarray, encoding: str, header: Header) -> Image:
    return convert.to_image_msg(array, encoding, header)


def compressed(array: np.ndarray, fmt: str, quality: int, header: Header) -> CompressedImage:
    form, data = codec.encode_compressed(array, fmt, quality)
    return CompressedImage(header=header, format=form, data=convert.byte_array(data))


def output_size(live: Any, input_hw: tuple[int, int],
                model_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the published images from the ``output_size`` parameter."""
    size = parse_output_size(live.output_size)
    if isinstance(size, str):
        return input_hw if size == "input" else model_hw
    return size[1], size[0]


def resize_rgb(rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The camera image at the output size (area averaging down, linear up)."""
    if rgb.shape[:2] == out_hw:
        return rgb
    smaller = out_hw[0] * out_hw[1] < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (out_hw[1], out_hw[0]),
                      interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)
