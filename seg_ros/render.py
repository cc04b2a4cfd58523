"""Colour masks, overlays and legends from label images (OpenCV LUTs, no per-pixel Python)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from seg_ros.model_card import ModelCard


class Palette:
    """Class colours as lookup tables, built once per model card.

    ``lut`` is (1, 256, 3) uint8 for cv2.LUT on 8-bit labels; ``table`` is (N, 3) for
    16-bit labels. Ids beyond the card's classes render black.
    """

    def __init__(self, colors: Iterable[tuple[int, int, int]]) -> None:
        colors = np.asarray(list(colors), np.uint8).reshape(-1, 3)
        self.num_classes = len(colors)
        self.table = np.zeros((max(256, self.num_classes), 3), np.uint8)
        self.table[: self.num_classes] = colors
        self.lut = np.ascontiguousarray(self.table[:256].reshape(1, 256, 3))
        self._hidden_lut: np.ndarray | None = None

    @classmethod
    def from_card(cls, card: ModelCard) -> Palette:
        return cls(card.colors)

    def color_mask(self, labels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) class ids -> (H, W, 3) RGB colour mask."""
        if labels.dtype == np.uint8:
            three = cv2.cvtColor(labels, cv2.COLOR_GRAY2RGB)
            return cv2.LUT(three, self.lut, dst=out)
        idx = np.minimum(labels, len(self.table) - 1)
        return np.take(self.table, idx, axis=0, out=out)

    def set_visible(self, class_ids: Iterable[int] | None) -> None:
        """Show only ``class_ids`` in overlays (None or empty: show all)."""
        ids = list(class_ids or [])
        if not ids:
            self._hidden_lut = None
            return
        hidden = np.full(256, 255, np.uint8)
        hidden[[i for i in ids if 0 <= i < 256]] = 0
        self._hidden_lut = hidden

    def overlay(self, rgb: np.ndarray, labels: np.ndarray, alpha: float,
                mask: np.ndarray | None = None) -> np.ndarray:
        """Blend the colour mask over ``rgb``: out = (1 - alpha) * rgb + alpha * colour.

        Classes hidden by :meth:`set_visible` keep the camera pixels. ``mask`` reuses an
        already computed colour mask.
        """
        if mask is None:
            mask = self.color_mask(labels)
        out = cv2.addWeighted(rgb, 1.0 - alpha, mask, alpha, 0.0)
        if self._hidden_lut is not None:
            hide = cv2.LUT(labels if labels.dtype == np.uint8 else
                           np.minimum(labels, 255).astype(np.uint8), self._hidden_lut)
            cv2.copyTo(rgb, hide, out)
        return out


def legend(card: ModelCard, row_height: int = 22, width: int = 220) -> np.ndarray:
    """An RGB legend image: one swatch and name per class, traversable ones marked."""
    n = card.num_classes
    img = np.full((row_height * n + 8, width, 3), 255, np.uint8)
    for i, (name, color) in enumerate(zip(card.class_names, card.colors)):
        y = 4 + i * row_height
        cv2.rectangle(img, (6, y + 3), (26, y + row_height - 3), tuple(int(c) for c in color), -1)
        text = f"{i} {name}" + ("  (floor)" if i in card.traversable else "")
        cv2.putText(img, text, (34, y + row_height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_rgb_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB array as PNG (OpenCV wants BGR)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}: check the folder exists and is writable")
