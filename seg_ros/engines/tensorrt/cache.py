"""The TensorRT engine cache: keys, paths, provenance and the build-once policy.

A serialized TensorRT engine (and a timing cache) is only valid for the GPU model (compute
capability) and the exact TensorRT version that made it, so both are keyed by them, every
``.engine`` carries a JSON sidecar (the model card) recording them, and the loader refuses a
mismatch. No TensorRT import here: the build itself is a function the caller passes in.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from seg_ros.engines.gpu import GpuInfo
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, file_sha256, read_sidecar, sidecar_path

PRECISIONS = ("fp32", "fp16", "int8")
PROVENANCE_KEY = "tensorrt_build"
DEFAULT_CACHE_DIR = "~/.cache/seg_ros/engines"


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


def _key(facts: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def engine_cache_key(onnx_sha256: str, precision: str, gpu: GpuInfo, trt_version: str,
                     **extra: object) -> str:
    """16 hex chars that change whenever the engine would: model bytes, precision, GPU model,
    compute capability, TensorRT version (+ ``extra`` such as the int8 calibration set)."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return _key({"onnx": onnx_sha256, "precision": precision, "gpu": gpu.name,
                 "cc": gpu.compute_capability, "trt": trt_version,
                 **{k: str(v) for k, v in sorted(extra.items())}})


def engine_cache_path(cache_dir: str | Path, onnx_path: str | Path, precision: str, key: str
                      ) -> Path:
    """``cache_dir/<model stem>.<precision>.<key>.engine`` (sidecar ``... .engine.json``)."""
    return Path(cache_dir).expanduser() / f"{Path(onnx_path).stem}.{precision}.{key}.engine"


def timing_cache_path(cache_dir: str | Path, gpu: GpuInfo, trt_version: str) -> Path:
    """``cache_dir/timing.<key>.cache``: kernel timings are per GPU model and TensorRT
    version, like engines, so each pair gets its own file (one shared file would be refused,
    or worse reused, after a TensorRT upgrade or on a second GPU)."""
    key = _key({"gpu": gpu.name, "cc": gpu.compute_capability, "trt": trt_version})
    return Path(cache_dir).expanduser() / f"timing.{key}.cache"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that readers see the old or the new bytes, never half a file
    (two builds finishing together, a build killed while writing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def find_cached_engine(path: Path, key: str) -> Path | None:
    """``path`` when it and its sidecar exist and the sidecar records ``key``, else None."""
    if not path.is_file() or not sidecar_path(path).is_file():
        return None
    try:
        built = read_sidecar(path).provenance.get(PROVENANCE_KEY, {})
    except Exception:  # a damaged sidecar means: build again
        return None
    return path if isinstance(built, dict) and built.get("cache_key") == key else None


BuildFn = Callable[[Path, Path, str, Path], Path]
"""build(onnx, out, cache_key, timing_cache) -> out: writes the engine and its sidecar."""


def ensure_engine(onnx_path: str | Path, cache_dir: str | Path, precision: str, gpu: GpuInfo,
                  trt_version: str, build: BuildFn, *, extra: dict[str, object] | None = None,
                  log: Callable[[str], None] = print) -> Path:
    """The cached engine for ``onnx_path`` on ``gpu`` + ``trt_version``, calling ``build`` only
    when the cache holds none with a matching key (first start, new model, new GPU, TensorRT
    upgrade). The build (minutes on a Jetson) is logged with its duration; a second process
    starting meanwhile waits on a lock and then finds the engine the first one built.
    ``extra``: more facts the engine depends on (the int8 calibration set)."""
    onnx_path = Path(onnx_path)
    key = engine_cache_key(file_sha256(onnx_path), precision, gpu, trt_version, **(extra or {}))
    path = engine_cache_path(cache_dir, onnx_path, precision, key)
    cached = find_cached_engine(path, key)
    if cached is not None:
        log(f"TensorRT engine cache hit: {cached}")
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
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
        build(onnx_path, path, key, timing_cache_path(cache_dir, gpu, trt_version))
        log(f"built {path.name} in {time.perf_counter() - t0:.1f} s")
    return path
