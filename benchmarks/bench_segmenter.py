"""Segmenter pre/post-processing and rendering at 640x480, inference excluded.

``postprocess_ms_640x480`` is what the node adds per frame around the engine when every image
output is on: labels (and confidence) back to the input size + colour mask + overlay.
"""

from __future__ import annotations

import cv2
import numpy as np

from seg_ros.engines import open_engine
from seg_ros.live.models import shipped_or_tiny_model
from seg_ros.model_card import read_card
from seg_ros.render import Palette
from seg_ros.segmenter import Segmenter
from seg_ros.timing import median_ms


def run() -> dict[str, float]:
    cv2.setNumThreads(1)  # the target is for one core
    path = shipped_or_tiny_model()
    seg = Segmenter(open_engine(path, threads=1))
    palette = Palette.from_card(read_card(path))
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 5)
    outputs = seg.infer(seg.preprocess(rgb).copy())

    def post() -> None:
        result = seg.postprocess(outputs, (480, 640), want_confidence=True)
        mask = palette.color_mask(result.labels)
        palette.overlay(rgb, result.labels, 0.5, mask)

    labels = seg.postprocess(outputs, (480, 640)).labels
    return {
        "preprocess_ms_640x480": median_ms(lambda: seg.preprocess(rgb), 100),
        "labels_resize_ms_640x480": median_ms(
            lambda: seg.postprocess(outputs, (480, 640), want_confidence=False), 100),
        "color_mask_ms_640x480": median_ms(lambda: palette.color_mask(labels), 100),
        "overlay_ms_640x480": median_ms(lambda: palette.overlay(rgb, labels, 0.5), 100),
        "postprocess_ms_640x480": median_ms(post, 100),
    }
