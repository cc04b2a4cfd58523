"""Build a TensorRT 10 engine from a seg_ros ONNX model (``seg-ros build-engine``).

ONNX parser (explicit batch; every parser error reported) -> builder config that really sets the
asked precision (FP16 flag; INT8 flag + FP16 fallback for layers without int8 kernels; never
STRONGLY_TYPED, which would ignore both) -> workspace memory-pool limit -> optional DLA core with
GPU fallback -> timing cache loaded and saved (rebuilds take seconds, not minutes) -> int8
entropy calibration (IInt8EntropyCalibrator2) on frames pre-processed by
``Segmenter.preprocess``, with a calibration cache file -> the engine plus its model-card
sidecar recording GPU, compute capability, TensorRT version and precision.

Argument checks and the other GPU-free parts are plain functions (tested on CPU machines); the
build itself runs only where tensorrt and a CUDA GPU are present.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seg_ros.engines.calibration import (
    CalibrationBatches,
    list_frames,
    read_calibration_cache,
    write_calibration_cache,
)
from seg_ros.engines.tensorrt import (
    PRECISIONS,
    PROVENANCE_KEY,
    build_provenance,
    current_gpu,
    engine_cache_key,
    missing_for_tensorrt,
    unavailable_message,
)
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import file_sha256, read_card, write_sidecar


@dataclass(frozen=True)
class BuildOptions:
    """``seg-ros build-engine`` settings. ``workspace_mb``: builder scratch memory in MiB;
    ``dla_core``: DLA index on Jetson Xavier/Orin (None = GPU only); ``timing_cache``: file
    of measured kernel timings reused across builds; ``calib_cache``: int8 calibration table."""

    precision: str = "fp16"
    out: Path | None = None
    calib_data: str | Path | None = None
    calib_frames: int = 100
    calib_cache: Path | None = None
    workspace_mb: int = 1024
    dla_core: int | None = None
    timing_cache: Path | None = None
    device_index: int = 0
    cache_key: str | None = None


def is_jetson(root: str | Path = "/") -> bool:
    """True on an NVIDIA Jetson (L4T): the only machines with DLA cores."""
    root = Path(root)
    if (root / "etc/nv_tegra_release").is_file():
        return True
    model = root / "proc/device-tree/model"
    try:
        return "jetson" in model.read_text(errors="ignore").lower()
    except OSError:
        return False


def default_engine_path(onnx: Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.fp16.engine`` next to it."""
    return onnx.with_name(f"{onnx.stem}.{precision}.engine")


def validate_build_options(onnx: str | Path, options: BuildOptions,
                           jetson: bool | None = None) -> BuildOptions:
    """Check arguments before any GPU work; returns the options with defaults filled in
    (output path, calibration cache path). ConfigError names the flag and the fix."""
    onnx = Path(onnx)
    if onnx.suffix.lower() != ".onnx":
        raise ConfigError(f"{onnx} is not an .onnx file: build-engine takes the exported ONNX "
                          "model (`seg-ros export`)")
    if not onnx.is_file():
        raise ConfigError(f"model file {onnx} does not exist: check the path")
    if options.precision not in PRECISIONS:
        raise ConfigError(f"--precision {options.precision!r}: choose one of "
                          f"{', '.join(PRECISIONS)}")
    if options.precision == "int8":
        if options.calib_data is None:
            raise ConfigError("--precision int8 needs --calib-data DIR (a folder of training "
                              "frames, ~100 used) to calibrate activation ranges")
        list_frames(options.calib_data, options.calib_frames)  # folder + count checks
    elif options.calib_data is not None:
        raise ConfigError(f"--calib-data is only used with --precision int8, not "
                          f"{options.precision}: drop it or add --precision int8")
    if options.calib_frames <= 0:
        raise ConfigError(f"--calib-frames {options.calib_frames} must be > 0 (100 is typical)")
    if options.workspace_mb <= 0:
        raise ConfigError(f"--workspace-mb {options.workspace_mb} must be > 0 (MiB of builder "
                          "scratch memory; 1024 is typical, 256 on small Jetsons)")
    if options.dla_core is not None:
        if options.dla_core < 0:
            raise ConfigError(f"--dla-core {options.dla_core} must be >= 0 (0 or 1 on Orin)")
        if not (is_jetson() if jetson is None else jetson):
            raise ConfigError(f"--dla-core {options.dla_core} needs a Jetson with DLA "
                              f"(Xavier / Orin) but this is a {platform.machine()} machine "
                              "without one: drop --dla-core to build for the GPU")
    out = Path(options.out) if options.out else default_engine_path(onnx, options.precision)
    if out.suffix not in (".engine", ".plan"):
        raise ConfigError(f"--out {out} must end in .engine or .plan (the sidecar "
                          f"{out.name}.json goes next to it)")
    calib_cache = options.calib_cache
    if options.precision == "int8" and calib_cache is None:
        calib_cache = out.with_name(f"{onnx.stem}.{file_sha256(onnx)[:12]}.calib")
    return replace(options, out=out, calib_cache=calib_cache)


def builder_flag_names(precision: str, dla: bool = False) -> list[str]:
    """``trt.BuilderFlag`` names that make the builder use ``precision``. INT8 keeps FP16 on
    so layers without int8 kernels fall back to half, not float; DLA adds GPU_FALLBACK."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    flags = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[precision]
    return [*flags, "GPU_FALLBACK"] if dla else flags


@dataclass(frozen=True)
class ParserIssue:
    """One ONNX parser error: code/description plus the node it concerns (-1 when none)."""

    code: str
    desc: str
    node: int = -1
    node_name: str = ""
    op: str = ""


def parser_issues(parser: Any) -> list[ParserIssue]:
    """All errors of a ``trt.OnnxParser`` (TRT 10 ``ParserError`` accessors)."""
    issues = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)

        def get(attr: str, default: Any, e: Any = e) -> Any:
            fn = getattr(e, attr, None)
            return fn() if callable(fn) else default

        issues.append(ParserIssue(str(get("code", "")).rsplit(".", 1)[-1], str(get("desc", e)),
                                  int(get("node", -1)), str(get("node_name", "")),
                                  str(get("node_operator", ""))))
    return issues


def format_parser_errors(onnx: Path, issues: Iterable[ParserIssue]) -> str:
    """One message listing each parser error with its node, and the usual fixes."""
    lines = []
    for k in issues:
        where = f"node {k.node}" if k.node >= 0 else "graph"
        if k.op or k.node_name:
            where += f" ({k.op} {k.node_name!r})".replace(" ''", "")
        lines.append(f"  {where}: {k.code} {k.desc}".rstrip())
    return (f"TensorRT's ONNX parser rejected {onnx}:\n" + "\n".join(lines or ["  (no detail)"])
            + "\nfix: re-export with a supported opset (`seg-ros export`, opset 17) or upgrade "
              "TensorRT; the onnxruntime backend still runs this model")


def make_entropy_calibrator(trt: Any, batches: CalibrationBatches, cache: Path | None,
                            cuda: Any, log: Callable[[str], None]) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` through one device buffer."""
    import numpy as np

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.buf = cuda.alloc(batches.shape, np.dtype(np.float32))  # once
            self.it = iter(batches)
            self.done = 0

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.it, None)
            if batch is None:
                return None
            np.copyto(self.buf.host, batch)
            cuda.upload(self.buf)
            cuda.synchronize()
            self.done += 1
            if self.done % 20 == 0:
                log(f"  calibration batch {self.done}/{len(batches)}")
            return [self.buf.ptr]

        def read_calibration_cache(self) -> bytes | None:
            data = read_calibration_cache(cache)
            if data is not None:
                log(f"reusing calibration cache {cache} (delete it to recalibrate)")
            return data

        def write_calibration_cache(self, data: Any) -> None:
            write_calibration_cache(cache, data)

    return EntropyCalibrator()


def build_engine(onnx: str | Path, options: BuildOptions,
                 log: Callable[[str], None] = print) -> Path:
    """Build ``options.out`` from ``onnx``; writes the engine and its card sidecar. Returns
    the engine path. EngineError (one line) when tensorrt or a CUDA GPU is missing."""
    onnx = Path(onnx)
    opts = validate_build_options(onnx, options)
    missing = missing_for_tensorrt(opts.device_index)
    if missing:
        raise EngineError(unavailable_message("seg-ros build-engine (TensorRT)", missing))
    import tensorrt as trt

    from seg_ros.engines.tensorrt import cuda_runtime

    assert opts.out is not None
    card = read_card(onnx)
    gpu = current_gpu(opts.device_index)
    if gpu is None:
        raise EngineError(f"CUDA GPU {opts.device_index} could not be queried: check nvidia-smi")
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TRT 10: every network is explicit-batch (the flag is gone/deprecated); TRT 8 needs it.
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)  # not STRONGLY_TYPED: precision flags must apply
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        raise EngineError(format_parser_errors(onnx, parser_issues(parser)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    # (platform_has_fast_* are deprecated in newer TRT 10 releases: absent means "assume yes")
    if opts.precision in ("fp16", "int8") and not getattr(builder, "platform_has_fast_fp16", 1):
        log(f"warning: {gpu.name} has no fast fp16; the engine may not be faster than fp32")
    if opts.precision == "int8" and not getattr(builder, "platform_has_fast_int8", 1):
        log(f"warning: {gpu.name} has no fast int8; layers may fall back to fp16")
    for name in builder_flag_names(opts.precision, dla=opts.dla_core is not None):
        config.set_flag(getattr(trt.BuilderFlag, name))
    if opts.dla_core is not None:
        if builder.num_DLA_cores <= opts.dla_core:
            cores = builder.num_DLA_cores
            raise EngineError(f"--dla-core {opts.dla_core}: this device has {cores} DLA cores: "
                              f"use 0..{cores - 1} or drop --dla-core")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
    timing_data = b""
    if opts.timing_cache is not None and Path(opts.timing_cache).is_file():
        timing_data = Path(opts.timing_cache).read_bytes()
        log(f"loaded timing cache {opts.timing_cache} ({len(timing_data)} bytes)")
    timing = config.create_timing_cache(timing_data)
    config.set_timing_cache(timing, ignore_mismatch=False)
    calib_frames = None
    if opts.precision == "int8":
        inp = network.get_input(0)
        n = int(inp.shape[0])
        if n <= 0:
            raise EngineError(f"{onnx} has a dynamic batch dimension: re-export it with a fixed "
                              "(1, 3, H, W) input (`seg-ros export`)")
        frames = list_frames(opts.calib_data or "", opts.calib_frames)
        batches = CalibrationBatches(frames, card, batch_size=n)
        calib_frames = batches.frames_used
        config.int8_calibrator = make_entropy_calibrator(
            trt, batches, opts.calib_cache, cuda_runtime(opts.device_index), log)
        log(f"int8: calibrating on {calib_frames} frames from {opts.calib_data} "
            f"(cache {opts.calib_cache})")
    log(f"building {opts.precision} engine for {onnx.name} on {gpu.name} "
        f"(sm {gpu.compute_capability}, TensorRT {trt.__version__})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build {onnx.name} at {opts.precision} (see the "
                          "log above): try a larger --workspace-mb or --precision fp16")
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    part.write_bytes(bytes(serialized))
    if opts.timing_cache is not None:
        Path(opts.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    sha = file_sha256(onnx)
    trt_version = str(trt.__version__)
    extra: dict[str, object] = {}
    if opts.precision == "int8":
        extra = {"calib_frames": calib_frames,
                 "calib_data": Path(opts.calib_data or "").resolve().name}
    if opts.dla_core is not None:
        extra["dla_core"] = opts.dla_core
    key = opts.cache_key or engine_cache_key(sha, opts.precision, gpu, trt_version)
    facts = build_provenance(gpu, trt_version, opts.precision, sha, key,
                             workspace_mb=opts.workspace_mb, source=onnx.name,
                             build_seconds=round(time.perf_counter() - t0, 1), **extra)
    write_sidecar(card.with_provenance(**{PROVENANCE_KEY: facts}), out)
    part.replace(out)  # the engine appears only with its sidecar in place
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    return out
