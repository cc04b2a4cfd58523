"""~/confidence: mono8, the max softmax probability x 255 (asked of the model only while
somebody subscribes)."""

from __future__ import annotations

from typing import Any

from seg_ros.ros.outputs.base import FrameResult
from seg_ros.ros.outputs.images import ImageOutput, image


class Confidence(ImageOutput):
    name = "confidence"
    topics = ("confidence",)

    def on(self, live: Any) -> bool:
        return bool(live.publish_confidence)

    def needs_confidence(self, cam: Any, live: Any) -> bool:
        return True

    def publish(self, frame: FrameResult) -> None:
        if frame.confidence is not None and self.want(frame.camera, "confidence", frame.live):
            self.send(frame, "confidence", image(frame.confidence, "mono8", frame.header))
