"""Inference engines behind one small interface.

An :class:`Engine` runs a fixed-shape NCHW float32 batch and returns named arrays: either
``labels`` (N, H, W) integer class ids (+ optional ``confidence`` (N, H, W) float32 max
softmax) when the card's ``output_kind`` is "labels", or ``logits`` (N, C, h, w) when it is
"logits". Backends live one per file and are imported only when asked for, so a CPU robot never
imports TensorRT and the node never imports torch unless the model is a torch program.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard


@runtime_checkable
class Engine(Protocol):
    """What the segmenter needs from a backend."""

    backend: str
    card: ModelCard
    input_shape: tuple[int, int, int, int]  # (N, C, H, W), fixed at load

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch (float32, ``input_shape``); returns outputs by name."""
        ...

    def describe(self) -> str:
        """One line for logs and diagnostics: backend, device, precision."""
        ...


EngineFactory = Callable[..., Engine]

# backend name -> "module:factory"; factories take (path, device=..., threads=..., **options)
BACKENDS: dict[str, str] = {
    "onnxruntime": "seg_ros.engines.onnxruntime:OnnxRuntimeEngine",
    "torch": "seg_ros.engines.torch:TorchEngine",
    "tensorrt": "seg_ros.engines.tensorrt:TensorRTEngine",
}
_REGISTERED: dict[str, EngineFactory] = {}

SUFFIX_BACKEND = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
                  ".pt": "torch", ".pt2": "torch", ".ts": "torch"}


def register_backend(name: str, factory: EngineFactory) -> None:
    """Register an extra backend (a test double, a vendor runtime) under ``name``."""
    _REGISTERED[name] = factory


def backend_names() -> list[str]:
    return ["auto", *BACKENDS, *_REGISTERED]


def resolve_backend(path: Path, backend: str) -> str:
    """Pick the backend for ``path``: 'auto' goes by file type, ONNX preferring TensorRT when a
    CUDA GPU and the tensorrt package are both present."""
    if backend != "auto":
        if ":" in backend:  # "package.module:Factory", a plugin backend
            return backend
        if backend not in BACKENDS and backend not in _REGISTERED:
            raise EngineError(
                f"unknown backend {backend!r}: choose one of {', '.join(backend_names())}"
            )
        return backend
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_BACKEND:
        raise EngineError(
            f"cannot tell the backend of {path.name} from its suffix: use .onnx, .engine or "
            ".pt/.pt2, or name the backend explicitly"
        )
    chosen = SUFFIX_BACKEND[suffix]
    if chosen == "onnxruntime":
        from seg_ros.engines.tensorrt_support import tensorrt_usable

        if tensorrt_usable():
            return "tensorrt"
    return chosen


def open_engine(
    path: str | Path,
    backend: str = "auto",
    device: str = "cpu",
    threads: int = 0,
    **options: object,
) -> Engine:
    """Open a model file with the chosen backend.

    Args:
        path: model file (.onnx with an embedded card, or .engine/.pt/.pt2 + JSON sidecar).
        backend: 'auto', 'onnxruntime', 'tensorrt', 'torch', a registered name, or
            'package.module:Factory' naming an importable factory (plugins, fault injection).
        device: 'cpu', 'cuda' or 'cuda:N'; for onnxruntime also 'tensorrt' (the TensorRT EP).
        threads: intra-op CPU threads; 0 lets the runtime decide.
        options: backend-specific settings (e.g. ``trt_cache_dir``).
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file {path} does not exist: check the model_path parameter")
    name = resolve_backend(path, backend)
    if name in _REGISTERED:
        factory = _REGISTERED[name]
    else:
        module, _, attr = BACKENDS.get(name, name).partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise EngineError(
                f"backend {name!r} cannot be imported ({e}): install it, or give "
                "'package.module:Factory' of an importable engine factory"
            ) from None
    return factory(path, device=device, threads=threads, **options)


def check_outputs(card: ModelCard, num_classes: int | None, source: str) -> None:
    """Refuse a card whose class count disagrees with what the graph computes."""
    if num_classes is not None and num_classes != card.num_classes:
        raise EngineError(
            f"{source}: the model outputs {num_classes} classes but its card lists "
            f"{card.num_classes} class_names: fix the card (seg-ros card) or re-export the model"
        )
