"""Post-processing of the heaviest common output: 150-class logits at stride 4 (an ADE20K-style
SegFormer / DDRNet head) for a 640x480 frame, on one core.

Three ways to get labels at the frame size, timed on the same output and compared pixel for
pixel with the exact answer (upsample every score plane bilinearly, then argmax):
  * ``bilinear``: what the segmenter does (argmax per cell, blend only where cells disagree);
  * ``argmax_nearest``: argmax per cell, then a nearest resize (fastest, boundaries shift);
  * ``upsample_scores``: the exact answer itself.
The scene is a real CamVid label image (its layout, at stride 4) with 150 smooth noisy score
planes over it, so boundaries fall where a street scene's do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from seg_ros.model_card import ModelCard
from seg_ros.postprocess import argmax_channels
from seg_ros.segmenter import Segmenter
from seg_ros.timing import median_ms
from seg_ros.train.data import default_data_dir

CLASSES, FRAME, STRIDE = 150, (480, 640), 4


@dataclass
class _Spec:
    """What the Segmenter needs of an engine to post-process outputs (no inference here)."""

    card: ModelCard
    input_shape: tuple[int, int, int, int]
    backend: str = "none"

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        raise RuntimeError("post-processing bench: no inference")

    def describe(self) -> str:
        return "post-processing only"


def scene_logits(layout: str = "nchw") -> np.ndarray:
    """(1, 150, 120, 160) logits: a CamVid scene's classes (spread over the 150 ids) on top,
    smooth per-class noise under them."""
    h, w = FRAME[0] // STRIDE, FRAME[1] // STRIDE
    truth = _scene_labels((w, h))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((CLASSES, h // 8, w // 8)).astype(np.float32)
    logits = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_CUBIC) for p in noise])
    ids = (truth.astype(np.int64) * 13) % CLASSES  # 11 scene classes among the 150
    # a trained head is confident inside objects: the scene's class leads by ~6 there
    np.put_along_axis(logits, ids[None], np.take_along_axis(logits, ids[None], 0) + 6.0, 0)
    if layout == "nhwc":
        return np.ascontiguousarray(logits.transpose(1, 2, 0))[None]
    return logits[None]


def _scene_labels(size: tuple[int, int]) -> np.ndarray:
    """A CamVid val label image at ``size`` = (w, h), or a banded street when it is absent."""
    paths = sorted((default_data_dir() / "valannot").glob("*.png"))
    if paths and (lab := cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE)) is not None:
        return cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
    w, h = size
    lab = np.zeros((h, w), np.uint8)
    lab[h // 3:] = 1
    lab[2 * h // 3:] = 3
    for k in range(5):
        lab[h // 2 + 5 * k:h // 2 + 5 * k + 20, 10 + 30 * k:28 + 30 * k] = 8
    return lab


def run() -> dict[str, float]:
    cv2.setNumThreads(1)  # the target is for one core
    out: dict[str, float] = {}
    for layout in ("nchw", "nhwc"):
        card = ModelCard(name="ade-like", class_names=tuple(f"c{i}" for i in range(CLASSES)),
                         colors=tuple((i, i, i) for i in range(CLASSES)), input_size=FRAME,
                         output_kind="logits", layout=layout)
        seg = Segmenter(_Spec(card, (1, 3, *FRAME)))  # type: ignore[arg-type]
        raw = scene_logits(layout)
        outputs = {"logits": raw}
        fresh = {"logits": raw.copy()}

        def labels(seg: Segmenter = seg, outputs: dict = outputs) -> np.ndarray:
            seg._decoded = None  # time the argmax too, every run
            return seg.labels(outputs, FRAME)

        out[f"postprocess_150c_s4_ms_640x480_{layout}"] = median_ms(labels, 30)
        if layout == "nchw":
            out.update(_compare(seg, fresh, raw[0]))
    return out


def _compare(seg: Segmenter, outputs: dict, scores: np.ndarray) -> dict[str, float]:
    """Times and pixel agreement of the three methods (NCHW)."""
    size = FRAME[::-1]

    def argmax_nearest() -> np.ndarray:
        cells = argmax_channels(scores, channels_last=False)[0]  # the same fast argmax
        return cv2.resize(cells, size, interpolation=cv2.INTER_NEAREST_EXACT)

    def upsample_scores() -> np.ndarray:
        return np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR)
                         for p in scores]).argmax(0)

    exact = upsample_scores()
    ours = seg.labels(outputs, FRAME)
    near = argmax_nearest()

    def confidence() -> None:
        seg._decoded = None
        seg.confidence(outputs, FRAME)

    return {
        "postprocess_150c_s4_ms_argmax_nearest": median_ms(argmax_nearest, 30),
        "postprocess_150c_s4_ms_upsample_scores": median_ms(upsample_scores, 3, warmup=1),
        "postprocess_150c_s4_agree_pct_bilinear": 100.0 * float((ours == exact).mean()),
        "postprocess_150c_s4_agree_pct_argmax_nearest": 100.0 * float((near == exact).mean()),
        "postprocess_150c_s4_confidence_ms": median_ms(confidence, 20),
    }
