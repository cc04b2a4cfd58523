"""Engine outputs in any common convention -> class ids and confidence at the frame's size.

Conventions: class scores (logits or probabilities, NCHW or NHWC, at any stride), integer label
maps ((1, H, W), (1, 1, H, W) or (H, W), any int dtype) and one-channel sigmoid masks.

Scores are resolved as "bilinear upsampling of the scores, then argmax" (what a PyTorch
``F.interpolate(..., mode="bilinear")`` + ``argmax`` pipeline gives), without upsampling C score
planes: the argmax is taken at the output's own resolution, every frame pixel whose four
bilinear source cells agree takes that label (a convex blend of score vectors that share their
top class keeps it: exact), and only the pixels between cells that disagree are blended, over
every class (up to 32 classes: exact) or over the classes of their four cells. Upsampling all
scores costs ~230 ms for 150 classes at stride 4 and 640x480; argmax then nearest is fastest but
moves every boundary by up to half a stride (89-94 % of pixels agree with the bilinear result
on such outputs). ``make bench`` (postprocess) measures this method.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from seg_ros.errors import EngineError


@dataclass(frozen=True)
class Placement:
    """Where the frame sits in the engine input: scale ``k`` (model px per frame px, per axis)
    and the top-left offset (model px) of the content; the rest is padding (letterbox)."""

    scale_y: float
    scale_x: float
    top: int
    left: int
    content: tuple[int, int]  # (height, width) of the resized frame in the engine input


def place(frame: tuple[int, int], model: tuple[int, int], letterbox: bool) -> Placement:
    """Stretch fills the engine input; letterbox keeps the aspect ratio and centres the frame."""
    (fh, fw), (mh, mw) = frame, model
    if not letterbox:
        return Placement(mh / fh, mw / fw, 0, 0, (mh, mw))
    k = min(mh / fh, mw / fw)
    ch, cw = min(mh, max(1, round(fh * k))), min(mw, max(1, round(fw * k)))
    return Placement(ch / fh, cw / fw, (mh - ch) // 2, (mw - cw) // 2, (ch, cw))


@dataclass(frozen=True)
class AxisMap:
    """Per frame pixel along one axis: the two bilinear source cells in the output grid, the
    weight of the second, and the nearest cell."""

    lo: np.ndarray
    hi: np.ndarray
    frac: np.ndarray
    nearest: np.ndarray

    @classmethod
    def build(cls, n_frame: int, n_out: int, scale: float, offset: int, n_model: int
              ) -> AxisMap:
        # frame pixel centre -> engine input coordinate -> output coordinate (pixel edges at
        # integers), then cv2's bilinear convention: centres at +0.5, clamped at the borders
        coord = ((np.arange(n_frame) + 0.5) * scale + offset) * (n_out / n_model)
        src = coord - 0.5
        lo = np.floor(src).astype(np.int64)
        frac = (src - lo).astype(np.float32)
        frac[lo < 0] = 0.0
        lo = np.clip(lo, 0, n_out - 1)
        frac[lo >= n_out - 1] = 0.0
        hi = np.minimum(lo + 1, n_out - 1)
        nearest = np.clip(np.floor(coord).astype(np.int64), 0, n_out - 1)  # holds the centre
        return cls(lo, hi, frac, nearest)


class OutputGrid:
    """How frame pixels map into an output grid of (h, w) cells; built once per frame size."""

    def __init__(self, frame: tuple[int, int], out: tuple[int, int], model: tuple[int, int],
                 placement: Placement) -> None:
        self.frame, self.out = frame, out
        self.y = AxisMap.build(frame[0], out[0], placement.scale_y, placement.top, model[0])
        self.x = AxisMap.build(frame[1], out[1], placement.scale_x, placement.left, model[1])
        self.stretch = placement.top == placement.left == 0 and placement.content == model
        self.identity = self.stretch and out == frame
        # float maps for cv2.remap (confidence): output coordinates of each frame pixel
        self.map_x = np.broadcast_to((self.x.lo + self.x.frac).astype(np.float32),
                                     frame).copy()
        self.map_y = np.broadcast_to((self.y.lo + self.y.frac).astype(np.float32)[:, None],
                                     frame).copy()

    def nearest(self, cells: np.ndarray) -> np.ndarray:
        """Per-cell values (h, w) -> (H, W) by the cell holding each pixel centre (OpenCV's
        INTER_NEAREST_EXACT where the frame fills the input)."""
        if self.identity:
            return cells
        if self.stretch:
            return cv2.resize(cells, self.frame[::-1], interpolation=cv2.INTER_NEAREST_EXACT)
        return cells.take(self.y.nearest, 0).take(self.x.nearest, 1)

    def linear(self, cells: np.ndarray) -> np.ndarray:
        """Per-cell values (h, w) -> (H, W) by bilinear interpolation (confidence)."""
        if self.identity:
            return cells
        return cv2.remap(cells, self.map_x, self.map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    def top_left(self, cells: np.ndarray) -> np.ndarray:
        return cells.take(self.y.lo, 0).take(self.x.lo, 1)


def squeeze_map(a: np.ndarray, what: str) -> np.ndarray:
    """(1, H, W), (1, 1, H, W), (1, H, W, 1) or (H, W) -> (H, W)."""
    if a.ndim == 4 and a.shape[-1] == 1 and a.shape[1] != 1:
        a = a[..., 0]
    if a.ndim < 2 or a.size != a.shape[-2] * a.shape[-1]:
        raise EngineError(f"{what} output of shape {a.shape} is not a (1, H, W) map: fix the "
                          "card with `seg-ros card MODEL --output NAME --output-kind KIND`")
    return a.reshape(a.shape[-2:])


def argmax_channels(scores: np.ndarray, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """(labels, top score) of (C, h, w) or (h, w, C) float32 scores; labels uint8/uint16.

    Channels-first runs one compare / masked copy / max per plane with OpenCV (1.1 ms for 150
    planes of 120x160 here, numpy's strided argmax over axis 0 3-6 ms); channels-last is
    numpy's contiguous argmax."""
    c = scores.shape[-1] if channels_last else scores.shape[0]
    dtype = np.uint8 if c <= 256 else np.uint16
    if channels_last:
        labels = scores.argmax(axis=-1)
        top = np.take_along_axis(scores, labels[..., None], axis=-1)[..., 0]
        return labels.astype(dtype), top
    top = scores[0].copy()
    labels = np.zeros(top.shape, dtype)
    ids = _id_planes(c, top.shape, dtype)
    for k in range(1, c):
        better = cv2.compare(scores[k], top, cv2.CMP_GT)
        cv2.copyTo(ids[k], better, labels)
        cv2.max(scores[k], top, dst=top)
    return labels, top


@functools.lru_cache(maxsize=4)
def _id_planes(c: int, shape: tuple[int, int], dtype: type) -> np.ndarray:
    """(C, h, w) planes filled with their own index: the masked-copy sources of the argmax."""
    return np.broadcast_to(np.arange(c, dtype=dtype)[:, None, None], (c, *shape)).copy()


EXACT_BLEND_CLASSES = 32  # up to this many classes, mixed pixels blend every class


def bilinear_labels(labels: np.ndarray, scores: np.ndarray, channels_last: bool,
                    grid: OutputGrid) -> np.ndarray:
    """(H, W) argmax of the bilinearly upsampled scores, from the (h, w) argmax ``labels``.

    Pixels between cells whose labels differ are blended over every class when there are at
    most EXACT_BLEND_CLASSES (exact), else over the classes of their four cells (a class that
    tops none of the four but wins the blend is missed: it needs a near tie)."""
    if grid.identity:
        return labels
    padded = np.pad(labels, ((0, 1), (0, 1)), mode="edge")
    a = padded[:-1, :-1]
    same = (a == padded[1:, :-1]) & (a == padded[:-1, 1:]) & (a == padded[1:, 1:])
    out = grid.top_left(labels)
    mixed = np.flatnonzero(~grid.top_left(same))
    if mixed.size:
        out.ravel()[mixed] = _blend_argmax(mixed, labels, scores, channels_last, grid)
    return out


def _blend_argmax(mixed: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                  channels_last: bool, grid: OutputGrid) -> np.ndarray:
    """Argmax of the bilinear blend of the scores at the frame pixels ``mixed`` (flat ids)."""
    h, w = labels.shape
    ys, xs = np.divmod(mixed, grid.frame[1])
    y0, y1, fy = grid.y.lo[ys], grid.y.hi[ys], grid.y.frac[ys]
    x0, x1, fx = grid.x.lo[xs], grid.x.hi[xs], grid.x.frac[xs]
    cells = (y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1)
    weights = ((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx)
    c = scores.shape[-1] if channels_last else scores.shape[0]
    if c <= EXACT_BLEND_CLASSES:
        candidates = np.broadcast_to(np.arange(c)[:, None], (c, mixed.size))
    else:
        flat_labels = labels.ravel()
        candidates = np.stack([flat_labels[cell] for cell in cells]).astype(np.int64)
    flat = scores.ravel()
    blended = np.empty(candidates.shape, np.float32)
    for k, cand in enumerate(candidates):
        idx = [cell * c + cand if channels_last else cand * (h * w) + cell for cell in cells]
        blended[k] = sum(wt * flat[i] for wt, i in zip(weights, idx))
    return candidates[blended.argmax(axis=0), np.arange(mixed.size)]


def max_softmax(scores: np.ndarray, top: np.ndarray, channels_last: bool) -> np.ndarray:
    """Max softmax probability 1 / sum(exp(l - max)) per cell, float32 (h, w). Channels-first
    accumulates plane by plane with OpenCV (1.2 ms for 150x120x160 here, numpy 2.3 ms)."""
    if channels_last:
        return (1.0 / np.exp(scores - top[..., None]).sum(axis=-1)).astype(np.float32)
    total = np.zeros_like(top)
    plane = np.empty_like(top)
    for k in range(scores.shape[0]):
        cv2.subtract(scores[k], top, dst=plane)
        cv2.exp(plane, dst=plane)
        cv2.add(total, plane, dst=total)
    return cv2.divide(1.0, total)
