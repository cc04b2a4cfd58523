"""seg_ros.metrics against torchmetrics on random and real CamVid label maps (ignore_index)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from seg_ros import metrics

C, IGNORE = 11, 11


def _reference(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """torchmetrics' (confusion matrix, per-class IoU, pixel accuracy)."""
    p, t = torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target.astype(np.int64))
    return (MulticlassConfusionMatrix(C, ignore_index=IGNORE)(p, t).numpy(),
            MulticlassJaccardIndex(C, average="none", ignore_index=IGNORE)(p, t).numpy(),
            float(MulticlassAccuracy(C, average="micro", ignore_index=IGNORE)(p, t)))


def _check(pred: np.ndarray, target: np.ndarray) -> None:
    cm = metrics.confusion_matrix(pred, target, C, IGNORE)
    ref_cm, ref_iou, ref_acc = _reference(pred, target)
    np.testing.assert_array_equal(cm, ref_cm)
    iou = metrics.iou_per_class(cm)
    present = np.isfinite(iou)
    np.testing.assert_allclose(iou[present], ref_iou[present], atol=1e-6)
    assert metrics.mean_iou(cm) == pytest.approx(float(np.mean(ref_iou[present])), abs=1e-6)
    assert metrics.pixel_accuracy(cm) == pytest.approx(ref_acc, abs=1e-6)


def test_random_maps_match_torchmetrics() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        target = rng.integers(0, C + 1, (37, 53))  # includes the ignore id 11
        pred = np.where(rng.random(target.shape) < 0.6, np.minimum(target, C - 1),
                        rng.integers(0, C, target.shape))
        _check(pred, target)


def test_real_label_maps_match_torchmetrics(camvid_dir) -> None:
    names = sorted((camvid_dir / "valannot").iterdir())[:3]
    labels = [lab for n in names if (lab := cv2.imread(str(n), cv2.IMREAD_GRAYSCALE)) is not None]
    assert len(labels) == len(names) == 3
    # "Prediction" = the next frame's labels, void filled with class 0.
    for a, b in itertools.pairwise(labels):
        _check(np.where(b == IGNORE, 0, b), a)


def test_ignore_and_absent_classes() -> None:
    target = np.array([[0, 0, 11], [1, 11, 1]])
    pred = np.array([[0, 1, 5], [1, 2, 1]])
    cm = metrics.confusion_matrix(pred, target, C, IGNORE)
    assert cm.sum() == 4  # the two void pixels are not counted
    iou = metrics.iou_per_class(cm)
    assert iou[0] == pytest.approx(0.5) and iou[1] == pytest.approx(2 / 3)
    assert np.isnan(iou[3])  # absent from truth and prediction
    assert iou[5] != iou[5] or iou[5] == 0  # predicted only on void: not counted -> NaN
    s = metrics.summary(cm, [str(i) for i in range(C)])
    assert s["miou"] == pytest.approx(np.nanmean(iou))
    assert s["per_class_iou"]["3"] is None
    meter = metrics.ConfusionMeter(C, IGNORE)
    meter.update(pred, target)
    meter.update(pred, target)
    np.testing.assert_array_equal(meter.compute(), 2 * cm)
    assert metrics.fw_iou(cm) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert metrics.mean_accuracy(cm) == pytest.approx((0.5 + 1.0) / 2)
