"""``backend: auto`` for an ONNX model: the fastest backend that really runs here, never a
failed start.

The chain is TensorRT -> onnxruntime's CUDA execution provider -> onnxruntime on the CPU. Each
step is taken only when everything it needs is present (:func:`seg_ros.engines.gpu
.tensorrt_problems`), and an engine that still fails to build or load hands over to the next
one. Whenever a GPU or TensorRT is on the machine but not used, one WARN line says why, and the
engine's ``describe()`` (start-up line, ``/diagnostics``) carries the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.errors import EngineError

_log = logging.getLogger("seg_ros.engines")


@dataclass(frozen=True)
class Choice:
    """A backend and its device; ``reason``: why a faster one was not taken (None: nothing to
    warn about, e.g. a CPU-only robot without TensorRT)."""

    backend: str
    device: str
    reason: str | None = None


def cuda_index(device: str) -> int:
    """GPU index in 'cuda:N' (0 for 'cpu', 'cuda' or anything without an index)."""
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


def onnx_choice(device: str, trt_missing: list[str], ort_providers: list[str], gpus: int,
                trt_installed: bool) -> Choice:
    """The first usable step of the chain for an ONNX model. ``device``: the node's device
    parameter ('cpu' default, 'cuda:N' picks the GPU); the other arguments are the probes of
    this machine (see :func:`probe_and_choose`)."""
    if device == "tensorrt":  # onnxruntime's TensorRT execution provider, asked explicitly
        return Choice("onnxruntime", device)
    index = cuda_index(device)
    if not trt_missing:
        return Choice("tensorrt", f"cuda:{index}")
    fallback = Choice("onnxruntime", ort_device(device, ort_providers, gpus))
    cuda_ep = fallback.device != "cpu"
    if not (trt_installed or gpus > 0 or device.startswith("cuda")):
        return fallback
    where = "onnxruntime CUDA" if cuda_ep else "onnxruntime CPU"
    why = f"TensorRT not used (missing {' and '.join(trt_missing)}): running {where}"
    if gpus > index and not cuda_ep:
        why += (" (this onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu "
                "and uninstall onnxruntime)")
    return Choice(fallback.backend, fallback.device, why)


def ort_device(device: str, ort_providers: list[str], gpus: int) -> str:
    """onnxruntime's device in the chain: 'cuda:N' where its CUDA provider and GPU N exist."""
    index = cuda_index(device)
    cuda_ep = "CUDAExecutionProvider" in ort_providers and gpus > index
    return f"cuda:{index}" if cuda_ep else "cpu"


def ort_providers() -> list[str]:
    """Execution providers this onnxruntime build offers ([] when it is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def probe_and_choose(device: str) -> Choice:
    """:func:`onnx_choice` with this machine's probes (driver, packages, onnxruntime build)."""
    import importlib.util

    from seg_ros.engines.gpu import cuda_device_count, tensorrt_problems

    return onnx_choice(device, tensorrt_problems(cuda_index(device)), ort_providers(),
                       cuda_device_count(),
                       importlib.util.find_spec("tensorrt") is not None)


def one_line(e: Exception) -> str:
    """The first line of an error (ours are one line; a library's may be a wall), with its
    type when it is not one of ours."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return first if isinstance(e, EngineError) else f"{type(e).__name__}: {first}"


OpenFn = Callable[..., Any]
"""open(backend_name, path, device=..., threads=..., **options) -> Engine"""


def open_onnx_auto(path: Path, device: str, threads: int, open_named: OpenFn,
                   log: Callable[[str], None] | None = None,
                   choice: Choice | None = None, **options: object) -> Any:
    """Open ``path`` with the first step of the chain that loads; a TensorRT engine that fails
    to build or load falls back to onnxruntime (CUDA, then CPU) with one WARN line."""
    warn = log or _log.warning
    if log is not None:  # the engines' own messages (TensorRT builds) go there too
        options = {**options, "log": log}
    choice = choice or probe_and_choose(device)
    if choice.backend == "tensorrt":
        try:
            return open_named("tensorrt", path, device=choice.device, threads=threads,
                              **options)
        except Exception as e:  # never fail to start: any TensorRT failure hands over
            from seg_ros.engines.gpu import cuda_device_count

            dev = ort_device(device, ort_providers(), cuda_device_count())
            choice = Choice("onnxruntime", dev, f"TensorRT failed ({one_line(e)}): running "
                            f"onnxruntime {'CUDA' if dev != 'cpu' else 'CPU'}")
    engine, reason = _open_onnxruntime(path, choice, threads, open_named, **options)
    if reason:
        warn(reason)
        engine.selection_note = reason
    return engine


def _open_onnxruntime(path: Path, choice: Choice, threads: int, open_named: OpenFn,
                      **options: object) -> tuple[Any, str | None]:
    """(engine, reason) on ``choice.device``; a CUDA session that cannot be made falls to
    the CPU, and the reason says so."""
    try:
        return open_named("onnxruntime", path, device=choice.device, threads=threads,
                          **options), choice.reason
    except EngineError as e:
        if choice.device == "cpu":
            raise
        reason = f"{choice.reason + '; ' if choice.reason else ''}onnxruntime CUDA failed " \
                 f"({one_line(e)}): running onnxruntime CPU"
    return open_named("onnxruntime", path, device="cpu", threads=threads, **options), reason
