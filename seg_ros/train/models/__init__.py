"""Model registry: architecture name -> builder(num_classes, **options) -> logits network.

Checkpoints store the name and options, so `seg-ros export` rebuilds the same network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from seg_ros.errors import ConfigError
from seg_ros.train.models.fpn import FPNSeg
from seg_ros.train.models.lraspp import LRASPP
from seg_ros.train.models.mobilenetv2 import (
    MobileNetV2Encoder,
    load_imagenet,
    resolve_encoder_weights,
)

REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mnv2_lraspp": lambda num_classes, **kw: LRASPP(num_classes, **kw),
    "mnv2_fpn": lambda num_classes, **kw: FPNSeg(num_classes, **kw),
}


def build_model(arch: str, num_classes: int, **options: Any) -> nn.Module:
    """Build a registered architecture with random weights."""
    if arch not in REGISTRY:
        raise ConfigError(f"unknown --arch {arch!r}: choose one of {sorted(REGISTRY)}")
    try:
        return REGISTRY[arch](num_classes, **options)
    except TypeError as e:
        raise ConfigError(f"bad options {options} for --arch {arch}: {e}") from None


def parse_arch_options(text: str) -> dict[str, Any]:
    """``"output_stride=16,width=128"`` -> ``{"output_stride": 16, "width": 128}`` (ints)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"--arch-options entry {part!r} must be key=value")
        out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return out


__all__ = ["REGISTRY", "MobileNetV2Encoder", "build_model", "load_imagenet",
           "parse_arch_options", "resolve_encoder_weights"]
