"""Inference engines behind one small interface.

An :class:`Engine` runs a fixed-shape float32 batch in the card's input layout (NCHW, or
NHWC for channels-last graphs) and returns the graph's outputs by
name; the card says which one to read and in what convention (``seg_ros.engines.outputs``
checks it, the segmenter decodes it). Backends live one per module (TensorRT, with its build,
cache and CUDA buffers, is the package ``tensorrt/``) and are imported only when asked for, so a
CPU robot never imports TensorRT and the node never imports torch unless the model is a torch
program. Offline model preparation (cards, inspection, fp16 files) is ``seg_ros.modelprep``,
which imports engines and never the other way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from inspect import Parameter, signature
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard


@runtime_checkable
class Engine(Protocol):
    """What the segmenter needs from a backend."""

    backend: str
    card: ModelCard
    # (1, 3, H, W) of one frame, fixed at load; (1, H, W, 3) for a card's input_layout nhwc
    input_shape: tuple[int, int, int, int]
    # optional ``max_batch``: frames one infer() call takes: 1 (absent: fixed at 1; batches run
    # as a loop), N (a fixed batch, padded when fewer frames wait) or 0 (dynamic: any number)

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        """Run one batch (float32, ``input_shape``); returns outputs by name. ``outputs``: the
        names wanted (None: all); a backend may compute and return more."""
        ...

    def describe(self) -> str:
        """One line for logs and diagnostics: backend, device, precision."""
        ...


EngineFactory = Callable[..., Engine]

# backend name -> "module:factory"; factories take (path, device=..., threads=..., **options)
BACKENDS: dict[str, str] = {
    "onnxruntime": "seg_ros.engines.onnxruntime:OnnxRuntimeEngine",
    "torch": "seg_ros.engines.torch:TorchEngine",
    "tensorrt": "seg_ros.engines.tensorrt.engine:TensorRTEngine",
}
_REGISTERED: dict[str, EngineFactory] = {}

SUFFIX_BACKEND = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
                  ".pt": "torch", ".pt2": "torch", ".ts": "torch"}


def register_backend(name: str, factory: EngineFactory) -> None:
    """Register an extra backend (a test double, a vendor runtime) under ``name``."""
    if isinstance(factory, type):
        _check_infer(name, factory)
    _REGISTERED[name] = factory


def backend_names() -> list[str]:
    return ["auto", *BACKENDS, *_REGISTERED]


def resolve_backend(path: Path, backend: str) -> str:
    """The backend for ``path``: 'auto' goes by file type (an ONNX model then takes the first
    usable step of TensorRT -> onnxruntime CUDA -> onnxruntime CPU, see
    :mod:`seg_ros.engines.auto`)."""
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
    return SUFFIX_BACKEND[suffix]


def open_engine(
    path: str | Path,
    backend: str = "auto",
    device: str = "cpu",
    threads: int = 0,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> Engine:
    """Open a model file with the chosen backend.

    Args:
        path: model file (.onnx with an embedded card, or .engine/.pt/.pt2 + JSON sidecar).
        backend: 'auto', 'onnxruntime', 'tensorrt', 'torch', a registered name, or
            'package.module:Factory' naming an importable factory (plugins, fault injection).
        device: 'cpu', 'cuda' or 'cuda:N'; for onnxruntime also 'tensorrt' (the TensorRT EP).
        threads: intra-op CPU threads; 0 lets the runtime decide.
        log: one-line messages about choosing, building and loading the engine: why 'auto'
            did not take a faster backend (default the ``seg_ros.engines`` logger, WARNING),
            TensorRT engine builds and cache hits (default stdout).
        options: backend-specific settings (e.g. ``trt_cache_dir``).
    """
    path = Path(path)
    if path.is_dir():
        raise EngineError(f"model_path {path} is a directory: give the model file in it "
                          "(.onnx, .engine, .pt or .pt2)")
    if not path.is_file():
        raise EngineError(f"model file {path} does not exist: check the model_path parameter")
    name = resolve_backend(path, backend)
    if backend == "auto" and name == "onnxruntime":
        from seg_ros.engines.auto import open_onnx_auto

        return open_onnx_auto(path, device, threads, _open_named, log, **options)
    if log is not None:
        options["log"] = log
    return _open_named(name, path, device=device, threads=threads, **options)


def _open_named(name: str, path: Path, **kwargs: object) -> Engine:
    """Open ``path`` with backend ``name`` (a built-in, registered or 'module:Factory')."""
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
        _check_plugin(name, factory)
    return factory(path, **kwargs)


def _check_plugin(name: str, factory: object) -> None:
    """A 'module:Factory' backend must be an engine class (infer and describe), so a parameter
    cannot make the node call an arbitrary function such as os:system."""
    if not (isinstance(factory, type) and callable(getattr(factory, "infer", None))
            and callable(getattr(factory, "describe", None))):
        raise EngineError(
            f"backend {name!r} is not an engine class (a class with infer() and describe()): "
            "give 'package.module:EngineClass' of a plugin engine, or one of "
            f"{', '.join(backend_names())}")
    _check_infer(name, factory)


def _check_infer(name: str, engine_class: type) -> None:
    """The engine's infer() takes the ``outputs`` the segmenter asks for."""
    try:
        params = signature(engine_class.infer).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # no signature to read (e.g. a C extension): trust it
        return
    takes_keywords = any(p.kind is Parameter.VAR_KEYWORD for p in params.values())
    if "outputs" not in params and not takes_keywords:
        raise EngineError(
            f"backend {name!r}: {engine_class.__name__}.infer() takes no 'outputs' argument: "
            "define infer(self, batch, outputs=None) (the output names wanted, None = all)")

