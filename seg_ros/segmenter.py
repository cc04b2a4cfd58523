"""Segmenter: RGB frame -> per-pixel labels (and confidence) at the frame's own size.

pre-process (one resize to the engine size, stretched or letterboxed; normalise; NCHW) ->
engine -> post-process (the card's output convention decoded by ``seg_ros.postprocess``, labels
back at the frame size, class groups applied by a lookup table; confidence only when asked).
Owns no ROS and no torch; buffers and maps that depend only on the model and the frame size are
built once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from seg_ros import postprocess as pp
from seg_ros.engines import Engine
from seg_ros.model_card import ModelCard
from seg_ros.preprocess import Preprocessor


@dataclass
class Segmentation:
    """Result for one frame, at the input frame's size.

    labels: (H, W) uint8 class ids (uint16 for models with more than 255 classes); group ids
        when the card has class groups.
    confidence: (H, W) uint8, max class probability scaled to 0..255; None when not asked or
        when the model outputs class ids only.
    """

    labels: np.ndarray
    confidence: np.ndarray | None = None


class Segmenter:
    """Runs an engine on RGB uint8 frames of any size.

    ``model_card`` is the engine's card (the model's own classes); ``card`` is what the robot
    sees: the class groups as classes when the card has groups, else the same card.
    """

    def __init__(self, engine: Engine, card: ModelCard | None = None) -> None:
        self.engine = engine
        self.model_card = card or engine.card
        self.card = self.model_card.grouped()
        mc = self.model_card
        shape = tuple(engine.input_shape)
        n, c, h, w = (shape[0], shape[3], *shape[1:3]) if mc.input_layout == "nhwc" else shape
        if (n, c) != (1, 3):
            want = "(1, H, W, 3)" if mc.input_layout == "nhwc" else "(1, 3, H, W)"
            raise ValueError(f"engine input {shape} is not {want} (card input_layout "
                             f"{mc.input_layout})")
        self.model_size = (h, w)
        self.max_batch = int(getattr(engine, "max_batch", 1))  # 0: any number per call
        # preprocess_batch's reused buffer, in the engine's input layout
        self._stack = np.zeros((0, *shape[1:]), np.float32)
        self._pre = Preprocessor(mc, self.model_size)
        self._grids: dict[tuple[tuple[int, int], tuple[int, int]], pp.OutputGrid] = {}
        self._decoded: tuple[np.ndarray, tuple[np.ndarray, bool, np.ndarray, np.ndarray]] | None \
            = None
        self._label_dtype = np.uint8 if self.card.num_classes <= 255 else np.uint16
        self._lut = _group_lut(mc, self._label_dtype)
        self._binary_logits = False  # set per output by _decode

    # --- stages, public so benchmarks and the node can time them -----------------------------

    def placement(self, size: tuple[int, int]) -> pp.Placement:
        """Where a frame of ``size`` = (H, W) sits in the engine input (cached per size)."""
        return self._pre.placement(size)

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> the engine's normalised (1, 3, h, w) float32 batch, or
        (1, h, w, 3) for a channels-last graph (:class:`seg_ros.preprocess.Preprocessor`; a
        reused buffer, valid until the next call)."""
        return self._pre.preprocess(rgb)

    def preprocess_batch(self, rgbs: Sequence[np.ndarray]) -> np.ndarray:
        """RGB frames of any sizes -> one (N, 3, h, w) (or (N, h, w, 3)) float32 batch, each
        frame resized on its own (a reused buffer, valid until the next call)."""
        n = len(rgbs)
        if self._stack.shape[0] < n:
            self._stack = np.zeros((n, *self._stack.shape[1:]), np.float32)
        for i, rgb in enumerate(rgbs):
            self._stack[i] = self._pre.preprocess(rgb)[0]
        return self._stack[:n]

    def infer_batch(self, batch: np.ndarray, want_confidence: bool = True
                    ) -> list[dict[str, np.ndarray]]:
        """Each frame's outputs (batch dimension 1) of an (N, 3, h, w) batch: one engine call
        per ``max_batch`` frames (all at once for a dynamic batch), one call per frame for an
        engine fixed at batch 1. Equal, frame by frame, to N single calls."""
        step = len(batch) if self.max_batch == 0 else self.max_batch
        per_frame: list[dict[str, np.ndarray]] = []
        for start in range(0, len(batch), step):
            outputs = self.infer(batch[start:start + step], want_confidence)
            n = min(step, len(batch) - start)
            per_frame += [{k: v[i:i + 1] for k, v in outputs.items()} for i in range(n)]
        return per_frame

    def infer(self, batch: np.ndarray, want_confidence: bool = True) -> dict[str, np.ndarray]:
        """Engine outputs of ``batch`` (N, 3, h, w), N up to ``max_batch``; an engine with a
        fixed batch larger than N gets zero frames as padding, cut off again here."""
        n, fixed = len(batch), self.max_batch
        if fixed > n:
            padded = np.zeros((fixed, *batch.shape[1:]), np.float32)
            padded[:n] = batch
            return {k: v[:n] for k, v in self._run(padded, want_confidence).items()}
        return self._run(batch, want_confidence)

    def _run(self, batch: np.ndarray, want_confidence: bool) -> dict[str, np.ndarray]:
        self._decoded = None  # an engine may hand back the same (reused) output buffers
        labels_only = self.model_card.output_kind == "labels" and not want_confidence
        return self.engine.infer(batch, [self.model_card.output] if labels_only else None)

    def postprocess(self, outputs: dict[str, np.ndarray], size: tuple[int, int],
                    want_confidence: bool = True) -> Segmentation:
        """Engine outputs -> labels (and confidence) at ``size`` = (H, W) of the input frame."""
        return Segmentation(labels=self.labels(outputs, size),
                            confidence=self.confidence(outputs, size) if want_confidence
                            else None)

    def labels(self, outputs: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Engine outputs -> (H, W) class (or group) ids at ``size``."""
        mc = self.model_card
        if mc.output_kind == "labels":
            cells = pp.squeeze_map(outputs[mc.output], mc.output)
            if cells.dtype != np.uint8 and cells.dtype != np.uint16:
                cells = cells.astype(np.uint8 if mc.num_classes <= 256 else np.uint16)
            cells = self._apply_groups(cells)
            labels = self._grid(size, cells.shape).nearest(cells)
        else:
            scores, channels_last, cells, _ = self._decode(outputs)
            labels = pp.bilinear_labels(cells, scores, channels_last,
                                        self._grid(size, cells.shape))
            labels = self._apply_groups(labels)
        if labels.dtype != self._label_dtype:
            labels = labels.astype(self._label_dtype)
        return np.ascontiguousarray(labels)

    def confidence(self, outputs: dict[str, np.ndarray], size: tuple[int, int]
                   ) -> np.ndarray | None:
        """Engine outputs -> (H, W) uint8 max class probability x 255 at ``size``; None when
        the engine gave none (a label-map model without a ``confidence`` output, or not asked)."""
        mc = self.model_card
        if mc.output_kind == "labels":
            conf = outputs.get("confidence")
            if conf is None:
                return None
            conf = pp.squeeze_map(conf, "confidence").astype(np.float32, copy=False)
        else:
            conf = self._max_probability(*self._decode(outputs))
        conf8 = cv2.convertScaleAbs(conf, alpha=255.0)  # saturating float -> uint8
        return self._grid(size, conf8.shape).linear(conf8)

    def __call__(self, rgb: np.ndarray, want_confidence: bool = True) -> Segmentation:
        batch = self.preprocess(rgb)
        outputs = self.infer(batch, want_confidence)
        return self.postprocess(outputs, rgb.shape[:2], want_confidence)

    # --- helpers ----------------------------------------------------------------------------

    def _grid(self, size: tuple[int, int], out: tuple[int, int]) -> pp.OutputGrid:
        key = ((int(size[0]), int(size[1])), (int(out[0]), int(out[1])))
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) > 8:  # a folder of mixed sizes must not grow this unbounded
                self._grids.clear()
            grid = pp.OutputGrid(key[0], key[1], self.model_size, self.placement(key[0]))
            self._grids[key] = grid
        return grid

    def _decode(self, outputs: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
        """(scores, channels_last, argmax cells, top score cells) of a score output; computed
        once per output array (labels and confidence share it)."""
        raw = outputs[self.model_card.output]
        if self._decoded is not None and self._decoded[0] is raw:
            return self._decoded[1]
        self._binary_logits = is_binary_logits(raw, self.model_card)
        decoded = _decode_scores(raw, self.model_card, self._binary_logits)
        self._decoded = (raw, decoded)
        return decoded

    def _max_probability(self, scores: np.ndarray, channels_last: bool, _labels: np.ndarray,
                         top: np.ndarray) -> np.ndarray:
        """Per cell: the winning class's probability (softmax of logits, the top probability,
        or max(p, 1 - p) of a sigmoid mask)."""
        kind = self.model_card.output_kind
        if kind == "sigmoid":
            return np.maximum(scores[1], 1.0 - scores[1])
        if kind == "logits" and self._binary_logits:
            p = 1.0 / (1.0 + np.exp(-np.abs(scores[1])))  # sigmoid of |logit| = max(p, 1 - p)
            return p.astype(np.float32, copy=False)
        if kind == "probabilities":
            return top
        return pp.max_softmax(scores, top, channels_last)

    def _apply_groups(self, labels: np.ndarray) -> np.ndarray:
        if self._lut is None:
            return labels
        if labels.dtype == np.uint8 and self._lut.size == 256:
            return cv2.LUT(labels, self._lut)
        return self._lut.take(labels, mode="clip")


def is_binary_logits(raw: np.ndarray, card: ModelCard) -> bool:
    """A one-channel logits output of a two-class card: binary logits (BCEWithLogits)."""
    if card.output_kind != "logits" or card.num_classes != 2 or raw.ndim not in (3, 4):
        return False
    return (raw.shape[-1] if card.layout == "nhwc" and raw.ndim == 4 else raw.shape[-3]) == 1


def _decode_scores(raw: np.ndarray, card: ModelCard, binary_logits: bool = False
                   ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """Score output -> (scores, channels_last, labels, top score), all per output cell.

    A sigmoid mask p becomes the two planes (threshold, p): their argmax is "p > threshold" and
    their bilinear blend is the blend of p, so it shares the score path exactly. One-channel
    logits l likewise become (logit(threshold), l): foreground where l > logit(threshold),
    blended as logits (what upsampling the logits, then thresholding, gives)."""
    if card.output_kind == "sigmoid" or binary_logits:
        p = pp.squeeze_map(raw, card.output).astype(np.float32, copy=False)
        t = card.threshold
        cut = float(np.log(t / (1.0 - t))) if binary_logits else t
        scores = np.stack([np.full_like(p, cut), p])
        labels = (p > cut).view(np.uint8)
        return scores, False, labels, np.maximum(p, cut)
    scores = raw[0] if raw.ndim == 4 else raw
    scores = np.ascontiguousarray(scores, np.float32)
    channels_last = card.layout == "nhwc"
    labels, top = pp.argmax_channels(scores, channels_last)
    return scores, channels_last, labels, top


def _group_lut(card: ModelCard, dtype: type) -> np.ndarray | None:
    """Model class id -> group id lookup table (ids past the model's classes map to
    themselves, clipped to the label dtype); None without groups."""
    if card.groups is None:
        return None
    size = 256 if card.num_classes <= 256 else 65536
    lut: np.ndarray = np.minimum(np.arange(size), np.iinfo(dtype).max).astype(dtype)
    lut[:card.num_classes] = card.groups.of_class
    return lut
