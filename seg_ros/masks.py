"""Label-image views robot consumers read in fixed conventions (ROS-free, NumPy/OpenCV).

* :class:`ClassMask`: 1 (or 255) where a pixel is one of some classes, 0 elsewhere: nvblox's
  dynamic-object mask convention, e.g. [Pedestrian, Bicyclist, Car] so mappers and SLAM ignore
  what moves. One table lookup per frame.
* :func:`mark_unknown`: labels whose confidence is below a threshold become 255, the
  "unlabelled" id of Nav2's semantic segmentation layer.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

UNLABELLED = 255


class ClassMask:
    """Labels -> uint8 mask, ``value`` where the class is one of ``class_ids``, else 0."""

    def __init__(self, class_ids: Iterable[int], value: int = 1, num_classes: int = 256) -> None:
        bins = 256 if num_classes <= 256 else 65536
        self.table = np.zeros(bins, np.uint8)
        ids = [int(c) for c in class_ids]
        self.table[[c for c in ids if 0 <= c < bins]] = value
        self.class_ids, self.value = tuple(sorted(set(ids))), value

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        if labels.dtype == np.uint8 and self.table.size == 256:
            return cv2.LUT(labels, self.table)
        return self.table[labels]


def mark_unknown(labels: np.ndarray, confidence: np.ndarray, below: float) -> np.ndarray:
    """A copy of uint8 ``labels`` with 255 where ``confidence`` (uint8, 0..255 = max softmax
    x 255) is below ``below`` (0..1); ``labels`` itself is left as it is."""
    out = labels.copy()
    out[confidence < below * 255.0] = UNLABELLED
    return out
