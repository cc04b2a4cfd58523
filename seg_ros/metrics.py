"""Segmentation metrics from a confusion matrix (numpy only; shared by training and bag eval).

Convention: ``cm[t, p]`` counts pixels whose truth is class ``t`` and prediction ``p``
(rows = truth, columns = prediction). Pixels whose truth equals ``ignore_index`` (or lies
outside ``0..num_classes-1``) are not counted. All ratios are fractions in 0..1; a class absent
from both truth and prediction has IoU NaN and is left out of the means (nan-aware).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """(C, C) int64 counts of (truth, prediction) pairs via one ``np.bincount``."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} pixels but target has {target.size}: "
                         "resize the prediction to the label size first")
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    # A prediction outside 0..C-1 would alias another cell: count it as wrong by clipping into
    # a dropped extra column.
    p = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)[keep]
    idx = target[keep] * (num_classes + 1) + p
    counts = np.bincount(idx, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)[:, :num_classes].astype(np.int64)


class ConfusionMeter:
    """Accumulates a confusion matrix over many frames."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        self.cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def add(self, cm: np.ndarray) -> None:
        """Add an already computed (C, C) matrix (e.g. counted on a GPU)."""
        self.cm += np.asarray(cm, np.int64)

    def reset(self) -> None:
        self.cm[:] = 0

    def compute(self) -> np.ndarray:
        return self.cm.copy()


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1), np.nan)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) per class; NaN where the class is in neither truth nor prediction."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    return _div(tp, cm.sum(0) + cm.sum(1) - tp)


def _nanmean(values: np.ndarray) -> float:
    """Mean over the finite entries (classes that occur); NaN when none do."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over classes present in truth or prediction (NaN classes skipped)."""
    return _nanmean(iou_per_class(cm))


def pixel_accuracy(cm: np.ndarray) -> float:
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def accuracy_per_class(cm: np.ndarray) -> np.ndarray:
    """Recall per class (TP / truth pixels); NaN for classes absent from the truth."""
    cm = np.asarray(cm, np.float64)
    return _div(np.diag(cm), cm.sum(1))


def mean_accuracy(cm: np.ndarray) -> float:
    return _nanmean(accuracy_per_class(cm))


def fw_iou(cm: np.ndarray) -> float:
    """Frequency-weighted IoU: per-class IoU weighted by the class's share of truth pixels."""
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    if total == 0:
        return float("nan")
    freq = cm.sum(1) / total
    iou = iou_per_class(cm)
    ok = freq > 0
    return float(np.sum(freq[ok] * np.nan_to_num(iou[ok])))


def summary(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Plain-data report: per-class IoU (None = absent), mIoU, pixel/mean accuracy, FWIoU."""
    iou = iou_per_class(cm)
    if len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} class names for a {len(iou)}-class matrix")
    return {
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(class_names, iou)},
        "miou": mean_iou(cm),
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_accuracy": mean_accuracy(cm),
        "fw_iou": fw_iou(cm),
    }
