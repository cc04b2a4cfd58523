"""~/labels (mono8 class ids, mono16 above 255 classes; step == width) and ~/labels/compressed
(PNG: lossless, class ids survive), with 255 where confidence is below ``unknown_below``."""

from __future__ import annotations

from typing import Any

from seg_ros.masks import mark_unknown
from seg_ros.ros.outputs.base import FrameResult
from seg_ros.ros.outputs.images import ImageOutput, compressed, image


class Labels(ImageOutput):
    name = "labels"
    topics = ("labels", "labels/compressed")

    def on(self, live: Any) -> bool:
        return bool(live.publish_labels)

    def needs_confidence(self, cam: Any, live: Any) -> bool:
        return bool(live.unknown_below > 0)

    def publish(self, frame: FrameResult) -> None:
        cam, live, encoding = frame.camera, frame.live, self.host.labels_encoding
        raw, png = self.want(cam, "labels", live), self.want(cam, "labels/compressed", live)
        if not (raw or png):
            return
        labels = frame.labels
        if live.unknown_below > 0 and frame.confidence is not None and encoding == "mono8":
            with frame.timer("postprocess"):
                labels = mark_unknown(labels, frame.confidence, live.unknown_below)
        if raw:
            self.send(frame, "labels", image(labels, encoding, frame.header))
        if png:
            with frame.timer("render"):
                msg = compressed(labels, "png", 100, frame.header)
            self.send(frame, "labels/compressed", msg)
