"""~/color_mask (rgb8, one colour per class) and ~/color_mask/compressed (JPEG); the overlay
reuses the colours of the frame."""

from __future__ import annotations

from typing import Any

from seg_ros.ros.outputs.base import FrameResult
from seg_ros.ros.outputs.images import ImageOutput


class ColorMask(ImageOutput):
    name = "color_mask"
    topics = ("color_mask", "color_mask/compressed")

    def on(self, live: Any) -> bool:
        return bool(live.publish_color_mask)

    def publish(self, frame: FrameResult) -> None:
        if not self.wanted(frame.camera, frame.live):
            return
        with frame.timer("render"):
            frame.color = self.host.palette.color_mask(frame.labels)
        self.picture(frame, frame.color)
