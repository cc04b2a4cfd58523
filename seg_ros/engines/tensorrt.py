"""TensorRT 10 backend (named-tensor API) and the GPU-free logic around it.

A serialized TensorRT engine is only valid for the GPU model (compute capability) and the exact
TensorRT version that built it, so every ``.engine`` carries a JSON sidecar (the model card)
whose provenance records both; the loader refuses a mismatch and says to rebuild with
``seg-ros build-engine``. Given an ``.onnx`` path, the backend builds (once) or reuses a cached
engine keyed by model hash + precision + GPU + TensorRT version (:func:`ensure_engine`).

Host/device buffers and the CUDA stream are allocated once per engine through a small
:class:`CudaRuntime` layer with two implementations: cuda-python (``cuda.bindings.runtime`` or
the older ``cuda.cudart``) or, when that is missing, torch CUDA tensors (torch is imported
lazily inside :func:`cuda_runtime` only in that case).

Everything that needs no GPU (dtype mapping, I/O spec validation, cache keys, compatibility
checks) is a plain function tested on CPU machines; the GPU path is exercised only where a
CUDA GPU and the tensorrt package exist.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seg_ros.engines.tensorrt_support import cuda_device_count
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, file_sha256, read_sidecar, sidecar_path

PRECISIONS = ("fp32", "fp16", "int8")
PROVENANCE_KEY = "tensorrt_build"
DEFAULT_CACHE_DIR = "~/.cache/seg_ros/engines"

# TensorRT DataType name -> numpy dtype. By name so it is testable without tensorrt.
# BF16 / FP8 / INT4 / FP4 have no plain numpy dtype: such I/O tensors are refused.
TRT_TO_NUMPY: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}
NUMPY_TO_TRT: dict[np.dtype, str] = {v: k for k, v in TRT_TO_NUMPY.items()}


def trt_dtype_name(dtype: object) -> str:
    """'FLOAT' for ``trt.DataType.FLOAT``, ``"DataType.FLOAT"`` or ``"float"``."""
    name = getattr(dtype, "name", None) or str(dtype)
    return name.rsplit(".", 1)[-1].upper()


def numpy_dtype(trt_dtype: object) -> np.dtype:
    """numpy dtype of a TensorRT DataType (enum or name); EngineError for BF16/FP8/INT4 I/O."""
    name = trt_dtype_name(trt_dtype)
    if name not in TRT_TO_NUMPY:
        raise EngineError(
            f"TensorRT I/O tensor type {name} has no numpy equivalent: rebuild the engine with "
            "float32 inputs/outputs (`seg-ros build-engine` keeps I/O float32)"
        )
    return TRT_TO_NUMPY[name]


def trt_name_of(dtype: np.dtype | type) -> str:
    """TensorRT DataType name of a numpy dtype (the inverse of :func:`numpy_dtype`)."""
    dt = np.dtype(dtype)
    if dt not in NUMPY_TO_TRT:
        raise EngineError(f"numpy dtype {dt} has no TensorRT equivalent")
    return NUMPY_TO_TRT[dt]


# --- I/O specs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor. ``shape`` uses -1 for dynamic dims; ``is_input`` by mode."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]


def tensor_specs(engine: Any) -> list[TensorSpec]:
    """I/O tensors of a deserialized ``trt.ICudaEngine`` via the TRT 10 named-tensor API."""
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = trt_dtype_name(engine.get_tensor_mode(name))  # TensorIOMode.INPUT / OUTPUT
        specs.append(TensorSpec(name, mode == "INPUT", numpy_dtype(engine.get_tensor_dtype(name)),
                                tuple(int(d) for d in engine.get_tensor_shape(name))))
    return specs


def validate_specs(specs: list[TensorSpec], card: ModelCard, source: str
                   ) -> tuple[TensorSpec, list[TensorSpec]]:
    """Check engine I/O against the card; returns (input, outputs). Rules: one float input
    (N, 3, H, W) with (H, W) = card.input_size (N may be dynamic, it is set to 1); outputs
    ``labels`` integer (+ optional ``confidence`` float) for a labels card, ``logits``
    (N, C, h, w) with C = number of card classes for a logits card."""
    inputs = [s for s in specs if s.is_input]
    outputs = [s for s in specs if not s.is_input]
    rebuild = "rebuild it from the matching .onnx with `seg-ros build-engine`"
    if len(inputs) != 1:
        raise EngineError(f"{source}: the engine has {len(inputs)} inputs "
                          f"({[s.name for s in inputs]}); seg_ros needs exactly one: {rebuild}")
    inp = inputs[0]
    if inp.dtype.kind != "f":
        raise EngineError(f"{source}: input {inp.name!r} is {inp.dtype}, expected float32: "
                          f"{rebuild}")
    h, w = card.input_size
    if len(inp.shape) != 4 or inp.shape[1] != 3 or inp.shape[0] not in (1, -1) or \
            tuple(inp.shape[2:]) != (h, w):
        raise EngineError(
            f"{source}: input {inp.name!r} has shape {inp.shape} but the card wants "
            f"(1, 3, {h}, {w}): fix the card's input_size or {rebuild}"
        )
    names = {s.name: s for s in outputs}
    if card.output_kind == "labels":
        if "labels" not in names:
            raise EngineError(f"{source}: card says output_kind='labels' but the engine outputs "
                              f"{sorted(names)}: expected an output named 'labels'; {rebuild}")
        if names["labels"].dtype.kind not in "iu":
            raise EngineError(f"{source}: output 'labels' is {names['labels'].dtype}, expected "
                              f"an integer type: {rebuild}")
        if "confidence" in names and names["confidence"].dtype.kind != "f":
            raise EngineError(f"{source}: output 'confidence' is {names['confidence'].dtype}, "
                              f"expected float: {rebuild}")
    else:
        if "logits" not in names:
            raise EngineError(f"{source}: card says output_kind='logits' but the engine outputs "
                              f"{sorted(names)}: expected an output named 'logits'; {rebuild}")
        shape = names["logits"].shape
        if len(shape) != 4 or shape[1] != card.num_classes:
            raise EngineError(
                f"{source}: output 'logits' has shape {shape}, i.e. not {card.num_classes} "
                "classes as the card lists: fix the card (seg-ros card) or re-export the model"
            )
    return inp, outputs


# --- GPU identity, cache keys, compatibility --------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """A CUDA device as TensorRT engines care about it: model name + compute capability."""

    name: str
    compute_capability: str  # "8.7"


def current_gpu(index: int = 0) -> GpuInfo | None:
    """Name and compute capability of CUDA device ``index`` from the driver (libcuda via ctypes,
    no torch); None when there is no driver or no such device."""
    if cuda_device_count() <= index:
        return None
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    dev = ctypes.c_int(0)
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    if (cuda.cuDeviceGet(ctypes.byref(dev), index) != 0
            or cuda.cuDeviceGetName(name, 256, dev) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0  # CC major
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0):  # CC minor
        return None
    return GpuInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")


def tensorrt_version() -> str | None:
    """Version string of the installed tensorrt package, None when not installed."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt as trt

    return str(trt.__version__)


def missing_for_tensorrt(device_index: int = 0) -> list[str]:
    """What this machine lacks to run TensorRT: [] when it can."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt Python package")
    if cuda_device_count() <= device_index:
        missing.append("a CUDA GPU" if device_index == 0 else f"CUDA GPU {device_index}")
    return missing


def unavailable_message(what: str, missing: list[str]) -> str:
    """One line: what cannot run, what is missing, and the fallback."""
    return (f"{what} is not available on this machine (missing {' and '.join(missing)}): "
            "use backend 'onnxruntime' with the .onnx model instead "
            "(or `seg-ros quantize` for int8 on the CPU)")


def build_provenance(gpu: GpuInfo, trt_version: str, precision: str, onnx_sha256: str,
                     cache_key: str, **extra: object) -> dict[str, object]:
    """The facts an engine's sidecar records under ``provenance['tensorrt_build']``."""
    return {"gpu_name": gpu.name, "compute_capability": gpu.compute_capability,
            "tensorrt_version": trt_version, "precision": precision,
            "onnx_sha256": onnx_sha256, "cache_key": cache_key, **extra}


def check_engine_compat(card: ModelCard, gpu: GpuInfo, trt_version: str, source: str) -> None:
    """Refuse an engine whose sidecar says it was built for another GPU or TensorRT version
    (deserializing it would fail or, worse, run wrong kernels)."""
    built = card.provenance.get(PROVENANCE_KEY)
    fix = (f"rebuild it on this machine with `seg-ros build-engine MODEL.onnx --out {source}` "
           "(or set engine_cache_dir so the node builds it once)")
    if not isinstance(built, dict):
        raise EngineError(f"{source}: its card records no TensorRT build (provenance "
                          f"'{PROVENANCE_KEY}'), so it cannot be checked against this GPU: {fix}")
    problems = []
    if str(built.get("compute_capability")) != gpu.compute_capability:
        problems.append(f"compute capability {built.get('compute_capability')} "
                        f"(this GPU: {gpu.compute_capability})")
    if built.get("gpu_name") != gpu.name:
        problems.append(f"GPU {built.get('gpu_name')!r} (this GPU: {gpu.name!r})")
    if str(built.get("tensorrt_version")) != trt_version:
        problems.append(f"TensorRT {built.get('tensorrt_version')} (installed: {trt_version})")
    if problems:
        raise EngineError(f"{source} was built for {', '.join(problems)}: {fix}")


def engine_cache_key(onnx_sha256: str, precision: str, gpu: GpuInfo, trt_version: str,
                     **extra: object) -> str:
    """16 hex chars that change whenever the engine would: model bytes, precision, GPU model,
    compute capability, TensorRT version (+ ``extra`` such as the int8 calibration set)."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    facts = {"onnx": onnx_sha256, "precision": precision, "gpu": gpu.name,
             "cc": gpu.compute_capability, "trt": trt_version,
             **{k: str(v) for k, v in sorted(extra.items())}}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def engine_cache_path(cache_dir: str | Path, onnx_path: str | Path, precision: str, key: str
                      ) -> Path:
    """``cache_dir/<model stem>.<precision>.<key>.engine`` (sidecar ``... .engine.json``)."""
    return Path(cache_dir).expanduser() / f"{Path(onnx_path).stem}.{precision}.{key}.engine"


def find_cached_engine(path: Path, key: str) -> Path | None:
    """``path`` when it and its sidecar exist and the sidecar records ``key``, else None."""
    if not path.is_file() or not sidecar_path(path).is_file():
        return None
    try:
        built = read_sidecar(path).provenance.get(PROVENANCE_KEY, {})
    except Exception:  # a damaged sidecar means: build again
        return None
    return path if isinstance(built, dict) and built.get("cache_key") == key else None


BuildFn = Callable[..., Path]


def ensure_engine(
    onnx_path: str | Path,
    cache_dir: str | Path,
    precision: str = "fp16",
    *,
    calib_data: str | Path | None = None,
    calib_frames: int = 100,
    device_index: int = 0,
    gpu: GpuInfo | None = None,
    trt_version: str | None = None,
    build: BuildFn | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The cached engine for ``onnx_path`` on this GPU + TensorRT, building it only when the
    cache holds none with a matching key (first start, new model, new GPU, TRT upgrade).

    Meant for the node's start-up: pass the .onnx model and ``engine_cache_dir``; the build
    (minutes on a Jetson) is logged with its duration and happens once, not on every start.
    ``gpu``/``trt_version``/``build`` default to this machine and :func:`trt_build.build_engine`.
    """
    onnx_path = Path(onnx_path)
    if gpu is None or trt_version is None:
        missing = missing_for_tensorrt(device_index)
        if missing:
            raise EngineError(unavailable_message("building a TensorRT engine", missing))
        gpu = gpu or current_gpu(device_index)
        trt_version = trt_version or tensorrt_version()
        if gpu is None or trt_version is None:
            raise EngineError(f"CUDA GPU {device_index} could not be queried: check nvidia-smi")
    extra: dict[str, object] = {}
    if precision == "int8" and calib_data is not None:
        extra = {"calib": Path(calib_data).resolve().name, "calib_frames": calib_frames}
    sha = file_sha256(onnx_path)
    key = engine_cache_key(sha, precision, gpu, trt_version, **extra)
    path = engine_cache_path(cache_dir, onnx_path, precision, key)
    cached = find_cached_engine(path, key)
    if cached is not None:
        log(f"TensorRT engine cache hit: {cached}")
        return cached
    from seg_ros.engines.trt_build import BuildOptions, build_engine

    if build is None:
        def build(onnx: Path, options: BuildOptions) -> Path:
            return build_engine(onnx, options, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per cache entry: a second node starting meanwhile waits, then
    # finds the engine the first one built.
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = find_cached_engine(path, key)
        if cached is not None:
            log(f"TensorRT engine cache hit (built by another process): {cached}")
            return cached
        log(f"building TensorRT {precision} engine for {onnx_path.name} on {gpu.name} "
            f"(sm {gpu.compute_capability}, TensorRT {trt_version}) -> {path}; "
            "this happens once per model, GPU and TensorRT version")
        t0 = time.perf_counter()
        options = BuildOptions(precision=precision, out=path, calib_data=calib_data,
                               calib_frames=calib_frames, cache_key=key,
                               timing_cache=Path(cache_dir).expanduser() / "timing.cache",
                               device_index=device_index)
        build(onnx_path, options)
        log(f"built {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


# --- CUDA buffers and stream ------------------------------------------------------------------


@dataclass
class Buffer:
    """One I/O tensor: a pinned host array and its device twin (``ptr``), allocated once."""

    host: np.ndarray
    ptr: int
    handle: Any = None  # the device allocation's owner (a torch tensor) where there is one


class CudaRuntime(Protocol):
    """The few CUDA calls the engine needs: one stream, buffers allocated once, async copies."""

    stream: int  # cudaStream_t as an int, for execute_async_v3

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer: ...
    def upload(self, buf: Buffer) -> None: ...
    def download(self, buf: Buffer) -> None: ...
    def synchronize(self) -> None: ...


class CudaPythonRuntime:
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` < 12.6)."""

    def __init__(self, device_index: int = 0) -> None:
        try:
            from cuda.bindings import runtime as rt
        except ImportError:
            from cuda import cudart as rt  # type: ignore[no-redef]
        self.rt = rt
        self._owned: list[tuple[str, int]] = []
        self._check(rt.cudaSetDevice(device_index))
        self._stream = self._check(rt.cudaStreamCreate())
        s = self._stream
        self.stream = int(s.getPtr()) if hasattr(s, "getPtr") else int(s)

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise EngineError(f"CUDA error {err}: check the GPU and driver (nvidia-smi)")
        return rest[0] if len(rest) == 1 else rest

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        host_ptr = int(self._check(self.rt.cudaMallocHost(nbytes)))
        self._owned.append(("host", host_ptr))
        dev_ptr = int(self._check(self.rt.cudaMalloc(nbytes)))
        self._owned.append(("device", dev_ptr))
        raw = (ctypes.c_ubyte * nbytes).from_address(host_ptr)
        host = np.frombuffer(raw, np.uint8)[: int(np.prod(shape)) * np.dtype(dtype).itemsize]
        return Buffer(host.view(dtype).reshape(shape), dev_ptr)

    def upload(self, buf: Buffer) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(buf.ptr, buf.host.ctypes.data, buf.host.nbytes,
                                            kind, self._stream))

    def download(self, buf: Buffer) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(buf.host.ctypes.data, buf.ptr, buf.host.nbytes,
                                            kind, self._stream))

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self._stream))

    def __del__(self) -> None:
        for kind, ptr in getattr(self, "_owned", []):
            (self.rt.cudaFreeHost if kind == "host" else self.rt.cudaFree)(ptr)


class TorchCudaRuntime:
    """The same layer on torch CUDA tensors (torch imported here, lazily, only on this path)."""

    def __init__(self, device_index: int = 0) -> None:
        import torch

        self.torch = torch
        self.dev = torch.device("cuda", device_index)
        torch.cuda.set_device(self.dev)
        self._stream = torch.cuda.Stream(self.dev)
        self.stream = int(self._stream.cuda_stream)

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        host_t = self.torch.from_numpy(np.zeros(shape, dtype)).pin_memory()
        dev_t = self.torch.empty_like(host_t, device=self.dev)
        return Buffer(host_t.numpy(), int(dev_t.data_ptr()), (host_t, dev_t))

    def upload(self, buf: Buffer) -> None:
        host_t, dev_t = buf.handle
        with self.torch.cuda.stream(self._stream):
            dev_t.copy_(host_t, non_blocking=True)

    def download(self, buf: Buffer) -> None:
        host_t, dev_t = buf.handle
        with self.torch.cuda.stream(self._stream):
            host_t.copy_(dev_t, non_blocking=True)

    def synchronize(self) -> None:
        self._stream.synchronize()


def cuda_runtime(device_index: int = 0) -> CudaRuntime:
    """cuda-python when importable, else torch CUDA; EngineError naming both when neither is."""
    if importlib.util.find_spec("cuda") is not None:
        try:
            return CudaPythonRuntime(device_index)
        except ImportError:
            pass
    if importlib.util.find_spec("torch") is not None:
        import torch  # lazily, only when cuda-python is missing

        if torch.cuda.is_available():
            return TorchCudaRuntime(device_index)
    raise EngineError("TensorRT needs CUDA buffers: install cuda-python "
                      "(pip install cuda-python) or a CUDA build of torch")


def parse_device(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1; EngineError for anything else (TensorRT runs on GPUs)."""
    kind, _, index = device.partition(":")
    if kind not in ("cuda", "tensorrt") or (index and not index.isdigit()):
        raise EngineError(f"device {device!r} is not a CUDA device: TensorRT needs 'cuda' or "
                          "'cuda:N'; for the CPU use backend 'onnxruntime'")
    return int(index or 0)


# --- the engine -------------------------------------------------------------------------------


class TensorRTEngine:
    """A deserialized TensorRT engine with pinned host + device buffers and one CUDA stream.

    ``path`` is an ``.engine`` with its sidecar, or an ``.onnx`` model: then the engine comes
    from :func:`ensure_engine` in ``engine_cache_dir`` (default ``~/.cache/seg_ros/engines``)
    at ``precision`` (default fp16); ``log`` receives the build/cache messages (the node's
    logger).
    """

    backend = "tensorrt"

    def __init__(self, path: Path, device: str = "cuda", threads: int = 0,
                 engine_cache_dir: str | None = None, precision: str = "fp16",
                 log: Callable[[str], None] = print, **_: object) -> None:
        path = Path(path)
        index = parse_device("cuda" if device == "cpu" else device)
        missing = missing_for_tensorrt(index)
        if missing:
            raise EngineError(unavailable_message("the TensorRT backend", missing))
        import tensorrt as trt

        gpu = current_gpu(index)
        if gpu is None:
            raise EngineError(f"CUDA GPU {index} could not be queried: check nvidia-smi")
        if path.suffix == ".onnx":
            path = ensure_engine(path, engine_cache_dir or DEFAULT_CACHE_DIR, precision,
                                 device_index=index, log=log)
        self.path = path
        self.card: ModelCard = read_sidecar(path)
        check_engine_compat(self.card, gpu, str(trt.__version__), str(path))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.cuda = cuda_runtime(index)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT could not deserialize {path}: rebuild it with "
                              "`seg-ros build-engine`")
        inp, outputs = validate_specs(tensor_specs(self.engine), self.card, str(path))
        self.context = self.engine.create_execution_context()
        h, w = self.card.input_size
        self.input_shape: tuple[int, int, int, int] = (1, 3, h, w)
        self.context.set_input_shape(inp.name, self.input_shape)
        self.input_name = inp.name
        self._buf: dict[str, Buffer] = {}
        for spec in [inp, *outputs]:
            shape = self.input_shape if spec.is_input else \
                tuple(self.context.get_tensor_shape(spec.name))
            self._buf[spec.name] = self.cuda.alloc(shape, spec.dtype)  # once, reused per frame
            self.context.set_tensor_address(spec.name, self._buf[spec.name].ptr)
        self.output_names = [s.name for s in outputs]
        self.precision = self.card.provenance.get(PROVENANCE_KEY, {}).get("precision", "?")
        self._gpu = gpu

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        """Run one (1, 3, H, W) float32 batch; returns copies of the asked outputs."""
        inp = self._buf[self.input_name]
        np.copyto(inp.host, batch, casting="same_kind")
        self.cuda.upload(inp)
        if not self.context.execute_async_v3(self.cuda.stream):
            raise EngineError(f"TensorRT execution of {self.path} failed: see the log above")
        names = outputs or self.output_names
        for name in names:
            self.cuda.download(self._buf[name])
        self.cuda.synchronize()
        # copies: the pinned buffers are overwritten by the next frame
        return {name: self._buf[name].host.copy() for name in names}

    def describe(self) -> str:
        return (f"tensorrt {self.precision} on {self._gpu.name} "
                f"(sm {self._gpu.compute_capability})")
