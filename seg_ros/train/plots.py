"""Training / evaluation plots (matplotlib Agg; no torch, so eval can use them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], out: str | Path,
                   title: str = "confusion (row-normalised: truth -> prediction)") -> Path:
    plt = _plt()
    cm = np.asarray(cm, np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = len(class_names)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title(title)
    return _save(plt, fig, out)


def plot_iou_bars(per_class: dict[str, float | None], out: str | Path, title: str = "") -> Path:
    plt = _plt()
    names = list(per_class)
    vals = [100 * (v or 0.0) for v in per_class.values()]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, vals, color="tab:blue")
    for i, v in enumerate(vals):
        ax.text(i, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("IoU %")
    ax.set_title(title or "per-class IoU")
    ax.tick_params(axis="x", rotation=45)
    return _save(plt, fig, out)


def plot_curves(history: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """loss.png (train loss per epoch) and miou.png (val mIoU per evaluated epoch)."""
    out_dir = Path(out_dir)
    ev = [h for h in history if h.get("val_miou") is not None]
    return [
        _line([h["epoch"] for h in history], [h["train_loss"] for h in history], "train loss",
              out_dir / "loss.png"),
        _line([h["epoch"] for h in ev], [100 * h["val_miou"] for h in ev], "val mIoU %",
              out_dir / "miou.png", marker="."),
    ]


def _line(x: Sequence[float], y: Sequence[float], ylabel: str, out: Path,
          marker: str | None = None) -> Path:
    """One per-epoch curve: the training plots differ only in data, label and marker."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, y, marker=marker)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def _save(plt: Any, fig: Any, out: str | Path) -> Path:
    """Lay out, write at 110 dpi and close the figure (pyplot keeps every open one alive)."""
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
