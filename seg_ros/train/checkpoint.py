"""Training checkpoints: tensors and plain data only, so ``torch.load(weights_only=True)`` reads
them, written atomically (a crash never leaves a half-written file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seg_ros.errors import ConfigError
from seg_ros.train.models import build_model

CKPT_FORMAT = 1


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a seg_ros checkpoint safely (weights_only); bad files raise naming file and fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found: pass the best.pt / last.pt of a run")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"checkpoint {path} is corrupt or not a torch file ({type(e).__name__}): delete it "
            "and use the run's other checkpoint (best.pt / last.pt) or train again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT or "model" not in ckpt:
        raise ConfigError(f"checkpoint {path} is not a seg_ros training checkpoint (format "
                          f"{CKPT_FORMAT}): pass a best.pt / last.pt written by `seg-ros train`")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the checkpoint's architecture and load its weights (eval mode)."""
    net = build_model(ckpt["arch"], len(ckpt["card"]["class_names"]), **ckpt["arch_options"])
    net.load_state_dict(ckpt["model"], strict=True)
    return net.eval()


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint
