"""Training / evaluation transforms (albumentations), normalised per the model card.

Uses albumentations when installed, else an equivalent cv2 fallback.
Train: random scale 0.5-2.0 (times ``base_scale``), pad (image 0, label = ignore) + random crop
to the training size, horizontal flip, colour jitter. Eval: the frame resized by ``base_scale``
(the network's native input, e.g. 0.8 x 360x480 = 288x384; labels stay at full size) and
normalised. Output is a float32 CHW
image in the card's normalisation ((x/255 - mean) / std, RGB) and an int64 HW label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


def _albumentations():
    try:
        import albumentations as A
    except ImportError:
        return None
    return A


class FallbackCompose:
    """The same pipeline in plain cv2/numpy, for machines without albumentations (e.g. a GPU
    box with no package index): scale, pad with ignore, crop, flip, brightness/contrast/
    saturation jitter. Same interface as ``albumentations.Compose`` as used here."""

    def __init__(self, crop: tuple[int, int], scale: tuple[float, float], ignore_index: int,
                 jitter: float) -> None:
        self.crop, self.scale, self.ignore, self.jitter = crop, scale, ignore_index, jitter
        self.rng = np.random.default_rng()

    def set_random_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        r, (h, w) = self.rng, self.crop
        f = r.uniform(*self.scale)
        size = (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        ph, pw = max(0, h - image.shape[0]), max(0, w - image.shape[1])
        if ph or pw:
            t, lft = ph // 2, pw // 2
            image = cv2.copyMakeBorder(image, t, ph - t, lft, pw - lft, cv2.BORDER_CONSTANT,
                                       value=(0, 0, 0))
            mask = cv2.copyMakeBorder(mask, t, ph - t, lft, pw - lft, cv2.BORDER_CONSTANT,
                                      value=self.ignore)
        y = int(r.integers(0, image.shape[0] - h + 1))
        x = int(r.integers(0, image.shape[1] - w + 1))
        image, mask = image[y:y + h, x:x + w], mask[y:y + h, x:x + w]
        if r.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if r.random() < 0.8:
            j = self.jitter
            img = image.astype(np.float32) * r.uniform(1 - j, 1 + j)  # brightness
            img = (img - img.mean()) * r.uniform(1 - j, 1 + j) + img.mean()  # contrast
            gray = img.mean(axis=2, keepdims=True)
            img = (img - gray) * r.uniform(1 - j, 1 + j) + gray  # saturation
            image = np.clip(img, 0, 255).astype(np.uint8)
        return {"image": np.ascontiguousarray(image), "mask": np.ascontiguousarray(mask)}


class SegTransform:
    """Callable ``(rgb uint8 HWC, label uint8 HW, seed|None) -> (float32 CHW, int64 HW)``."""

    def __init__(self, compose: Any, mean: Sequence[float], std: Sequence[float],
                 image_scale: float = 1.0) -> None:
        self.compose = compose
        self.image_scale = float(image_scale)  # eval: resize the image only (labels full size)
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.inv_std = 1.0 / (np.asarray(std, np.float32) * 255.0)

    def __call__(self, image: np.ndarray, label: np.ndarray,
                 seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.compose is not None:
            if seed is not None:
                self.compose.set_random_seed(seed)
            out = self.compose(image=image, mask=label)
            image, label = out["image"], out["mask"]
        if self.image_scale != 1.0:
            h, w = image.shape[:2]
            size = (max(1, round(w * self.image_scale)), max(1, round(h * self.image_scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)  # as the Segmenter
        x = (image.astype(np.float32) - self.mean) * self.inv_std
        return np.ascontiguousarray(x.transpose(2, 0, 1)), label.astype(np.int64)


def train_transform(crop: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                    ignore_index: int, scale: tuple[float, float] = (0.5, 2.0),
                    jitter: float = 0.3, base_scale: float = 1.0) -> SegTransform:
    """Scale 0.5-2.0 (linear image, nearest label), pad with ignore, crop (h, w), flip, jitter.

    ``base_scale`` multiplies the scale range: a network whose native input is 0.8 x the frame
    (288x384 for 360x480 CamVid) trains on crop=(288, 384), base_scale=0.8, i.e. frames scaled
    by 0.4-1.6, so objects have the sizes it will see at inference.
    """
    if base_scale <= 0:
        raise ValueError(f"base_scale must be > 0, got {base_scale}")
    A = _albumentations()
    h, w = crop
    scale = (scale[0] * base_scale, scale[1] * base_scale)
    if A is None:
        return SegTransform(FallbackCompose(crop, scale, ignore_index, jitter), mean, std)
    compose = A.Compose([
        A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST, p=1.0),
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0,
                      fill_mask=ignore_index),
        A.RandomCrop(height=h, width=w),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=0.03, p=0.8),
    ])
    return SegTransform(compose, mean, std)


def eval_transform(mean: Sequence[float], std: Sequence[float],
                   base_scale: float = 1.0) -> SegTransform:
    """The image resized by ``base_scale`` (1: the full frame) and normalised; the label stays
    at the frame's size, where scores are counted (as `seg-ros eval` does)."""
    return SegTransform(None, mean, std, image_scale=base_scale)
