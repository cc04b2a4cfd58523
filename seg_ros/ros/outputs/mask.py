"""~/mask: mono8, ``mask_value`` where the pixel's class is one of ``mask_classes``, 0
elsewhere (e.g. people and cars for mappers and SLAM to ignore); off while mask_classes is
unset."""

from __future__ import annotations

from typing import Any

from seg_ros.masks import ClassMask
from seg_ros.ros import params
from seg_ros.ros.outputs.base import FrameResult
from seg_ros.ros.outputs.images import ImageOutput, image


class Mask(ImageOutput):
    name = "mask"
    topics = ("mask",)
    _mask: ClassMask | None = None

    def on(self, live: Any) -> bool:
        return bool(live.mask_classes)

    def publish(self, frame: FrameResult) -> None:
        live, card = frame.live, self.host.card
        if not self.want(frame.camera, "mask", live):
            return
        with frame.timer("render"):
            ids = params.parse_class_filter(live.mask_classes, card.class_names)
            if self._mask is None or (self._mask.class_ids, self._mask.value) != (
                    ids, live.mask_value):
                self._mask = ClassMask(ids, live.mask_value, card.num_classes)
            mask = self._mask(frame.labels)
        self.send(frame, "mask", image(mask, "mono8", frame.header))
