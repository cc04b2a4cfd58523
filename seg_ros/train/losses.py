"""Segmentation losses, all honouring ``ignore_index``; combine with ``"ce:1.0,dice:0.5"``.

Every loss takes logits (N, C, h, w) at any resolution (upsampled bilinearly to the label size
first) and int64 labels (N, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.errors import ConfigError


def _upsample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear",
                               align_corners=False)
    return logits.float()


class CELoss(nn.Module):
    """Cross-entropy, optionally class-weighted (median-frequency balancing)."""

    weight: torch.Tensor | None  # a buffer: moves with .to(device)

    def __init__(self, ignore_index: int, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_upsample(logits, target), target, weight=self.weight,
                               ignore_index=self.ignore_index)


class OHEMCELoss(nn.Module):
    """Online hard example mining CE: mean over pixels whose true-class probability < thresh,
    but at least ``min_kept`` (fraction of valid pixels) hardest ones."""

    weight: torch.Tensor | None

    def __init__(self, ignore_index: int, weight: torch.Tensor | None = None,
                 thresh: float = 0.7, min_kept: float = 0.1) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_thresh = -float(torch.log(torch.tensor(thresh)))
        self.min_kept = min_kept
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(_upsample(logits, target), target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction="none").flatten()
        valid = int((target != self.ignore_index).sum())
        if valid == 0:
            return loss.sum() * 0.0
        k = max(1, int(self.min_kept * valid))
        hard = loss[loss > self.loss_thresh]
        if hard.numel() < k:
            hard = loss.topk(k).values
        return hard.mean()


class DiceLoss(nn.Module):
    """1 - mean soft Dice over classes present in the batch (ignored pixels masked out)."""

    def __init__(self, ignore_index: int, eps: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.eps = ignore_index, eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _upsample(logits, target)
        c = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1).float()
        t = target.clamp(0, c - 1) * (target != self.ignore_index)
        onehot = F.one_hot(t, c).permute(0, 3, 1, 2).float() * valid
        prob = logits.softmax(1) * valid
        inter = (prob * onehot).sum((0, 2, 3))
        denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = (2 * inter + self.eps) / (denom + self.eps)
        present = onehot.sum((0, 2, 3)) > 0
        return 1.0 - (dice[present].mean() if present.any() else dice.mean())


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): CE scaled by (1 - p_t)^gamma, mean over valid pixels."""

    weight: torch.Tensor | None

    def __init__(self, ignore_index: int, gamma: float = 2.0,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index, self.gamma = ignore_index, gamma
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _upsample(logits, target)
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        pt = torch.exp(-F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                        reduction="none"))
        w: torch.Tensor | float = 1.0
        if self.weight is not None:
            w = self.weight[target.clamp(0, len(self.weight) - 1)]
        valid = target != self.ignore_index
        loss = (w * (1 - pt) ** self.gamma * ce)[valid]
        return loss.mean() if loss.numel() else loss.sum() * 0.0


class WeightedSum(nn.Module):
    def __init__(self, parts: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        self.names = [n for n, _, _ in parts]
        self.factors = [f for _, f, _ in parts]
        self.parts = nn.ModuleList(m for _, _, m in parts)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(f * m(logits, target) for f, m in zip(self.factors, self.parts))


LOSSES = ("ce", "wce", "ohem", "wohem", "dice", "focal")


def build_loss(spec: str, ignore_index: int, class_weights: torch.Tensor | None) -> WeightedSum:
    """``"wce:1.0,dice:0.5"`` -> weighted sum. ``ce`` = plain CE, ``wce`` = class-weighted CE,
    ``ohem`` = OHEM CE, ``wohem`` = class-weighted OHEM CE, ``dice``, ``focal`` (class-weighted)."""
    parts: list[tuple[str, float, nn.Module]] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, factor = item.partition(":")
        try:
            f = float(factor) if factor else 1.0
        except ValueError:
            raise ConfigError(f"--loss entry {item!r}: the factor must be a number") from None
        if name == "ce":
            m: nn.Module = CELoss(ignore_index)
        elif name == "wce":
            m = CELoss(ignore_index, class_weights)
        elif name == "ohem":
            m = OHEMCELoss(ignore_index)
        elif name == "wohem":
            m = OHEMCELoss(ignore_index, class_weights)
        elif name == "dice":
            m = DiceLoss(ignore_index)
        elif name == "focal":
            m = FocalLoss(ignore_index, weight=class_weights)
        else:
            raise ConfigError(f"unknown loss {name!r} in --loss {spec!r}: use {LOSSES} as "
                              "name:factor pairs, e.g. wce:1.0,dice:0.5")
        parts.append((name, f, m))
    if not parts:
        raise ConfigError(f"--loss {spec!r} names no loss: e.g. --loss wce:1.0,dice:0.5")
    return WeightedSum(parts)
