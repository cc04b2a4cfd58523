"""~/overlay (rgb8: the camera image blended with the class colours, ``overlay_alpha``; only
the classes of ``class_filter``) and ~/overlay/compressed (JPEG)."""

from __future__ import annotations

from typing import Any

from seg_ros.ros import params
from seg_ros.ros.outputs.base import FrameResult
from seg_ros.ros.outputs.images import ImageOutput


class Overlay(ImageOutput):
    name = "overlay"
    topics = ("overlay", "overlay/compressed")
    _filter_src: tuple[str, ...] | None = None

    def on(self, live: Any) -> bool:
        return bool(live.publish_overlay)

    def publish(self, frame: FrameResult) -> None:
        if not self.wanted(frame.camera, frame.live):
            return
        live, palette = frame.live, self.host.palette
        with frame.timer("render"):
            if live.class_filter != self._filter_src:  # validated when it was set
                self._filter_src = live.class_filter
                palette.set_visible(params.parse_class_filter(live.class_filter,
                                                              self.host.card.class_names))
            overlay = palette.overlay(frame.rgb, frame.labels, live.overlay_alpha, frame.color)
        self.picture(frame, overlay)
