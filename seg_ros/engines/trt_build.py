"""Build a TensorRT 10 engine from a seg_ros ONNX model (``seg-ros build-engine``).

CUDA device selected first (the builder works on the current device) -> ONNX parsed from a copy
whose label cast TensorRT supports (:mod:`seg_ros.engines.trt_onnx`), every parser error
reported -> an optimisation profile for dynamic inputs (batch 1, the card's H x W) -> the
precision plan this TensorRT supports (:func:`precision_plan`: builder flags where they exist,
explicit Q/DQ int8, or implicit calibration where it still exists, said in the log and the
sidecar) -> workspace limit -> optional DLA core with GPU fallback -> a timing cache per GPU and
TensorRT version -> the engine plus its model-card sidecar.

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

from seg_ros.engines.calibration import CalibrationBatches, list_frames
from seg_ros.engines.cuda_runtime import cuda_runtime
from seg_ros.engines.gpu import GpuInfo, current_gpu, tensorrt_problems, unavailable_message
from seg_ros.engines.trt_cache import (
    PRECISIONS,
    PROVENANCE_KEY,
    build_provenance,
    engine_cache_key,
    write_bytes_atomic,
)
from seg_ros.engines.trt_calibrator import CalibrationFeed, make_entropy_calibrator
from seg_ros.engines.trt_onnx import has_qdq, qdq_problems, tensorrt_onnx
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import ModelCard, file_sha256, read_card, write_sidecar


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


def is_qdq_model(onnx: Path) -> bool:
    """True when ``onnx`` is explicitly quantized (Q/DQ); ConfigError when TensorRT cannot
    take its quantization (``seg-ros quantize`` makes uint8 asymmetric Q/DQ for the CPU)."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    if not has_qdq(model):
        return False
    problems = qdq_problems(model)
    if problems:
        raise ConfigError(
            f"{onnx} is quantized with {' and '.join(problems)}, which TensorRT does not take "
            "(it needs signed int8 with zero points 0): build the float model with --precision "
            "int8 --calib-data DIR, or give a Q/DQ model with symmetric int8 scales")
    return True


def _check_precision_args(onnx: Path, options: BuildOptions) -> None:
    if options.precision not in PRECISIONS:
        raise ConfigError(f"--precision {options.precision!r}: choose one of "
                          f"{', '.join(PRECISIONS)}")
    if options.calib_frames <= 0:
        raise ConfigError(f"--calib-frames {options.calib_frames} must be > 0 (100 is typical)")
    if is_qdq_model(onnx):
        if options.precision != "int8" or options.calib_data is not None:
            raise ConfigError(f"{onnx} carries its own int8 scales (Q/DQ): build it with "
                              "--precision int8 and without --calib-data")
    elif options.precision == "int8":
        if options.calib_data is None:
            raise ConfigError("--precision int8 needs --calib-data DIR (a folder of training "
                              "frames, ~100 used) to calibrate activation ranges")
        list_frames(options.calib_data, options.calib_frames)  # folder + count checks
    elif options.calib_data is not None:
        raise ConfigError(f"--calib-data is only used with --precision int8, not "
                          f"{options.precision}: drop it or add --precision int8")


def _check_dla_args(options: BuildOptions, jetson: bool | None) -> None:
    if options.dla_core is None:
        return
    if options.dla_core < 0:
        raise ConfigError(f"--dla-core {options.dla_core} must be >= 0 (0 or 1 on Orin)")
    if options.precision == "fp32":
        raise ConfigError(f"--dla-core {options.dla_core} needs --precision fp16 or int8: "
                          "DLA cores have no fp32")
    if not (is_jetson() if jetson is None else jetson):
        raise ConfigError(f"--dla-core {options.dla_core} needs a Jetson with DLA "
                          f"(Xavier / Orin) but this is a {platform.machine()} machine "
                          "without one: drop --dla-core to build for the GPU")


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
    _check_precision_args(onnx, options)
    if options.workspace_mb <= 0:
        raise ConfigError(f"--workspace-mb {options.workspace_mb} must be > 0 (MiB of builder "
                          "scratch memory; 1024 is typical, 256 on small Jetsons)")
    _check_dla_args(options, jetson)
    out = Path(options.out) if options.out else default_engine_path(onnx, options.precision)
    if out.suffix not in (".engine", ".plan"):
        raise ConfigError(f"--out {out} must end in .engine or .plan (the sidecar "
                          f"{out.name}.json goes next to it)")
    calib_cache = options.calib_cache
    if options.calib_data is not None and calib_cache is None:
        calib_cache = out.with_name(f"{onnx.stem}.{file_sha256(onnx)[:12]}.calib")
    return replace(options, out=out, calib_cache=calib_cache)


def check_dla_core(core: int, cores: int) -> None:
    """EngineError when this device has no DLA core ``core`` (``cores`` of them)."""
    if cores <= 0:
        raise EngineError(f"--dla-core {core}: this device has no DLA cores: drop --dla-core "
                          "to build for the GPU")
    if core >= cores:
        raise EngineError(f"--dla-core {core}: this device has {cores} DLA core"
                          f"{'s' if cores > 1 else ''}: use 0..{cores - 1} or drop --dla-core")


# --- what this TensorRT can do, and the plan for the asked precision --------------------------


@dataclass(frozen=True)
class TrtCaps:
    """Features of the installed TensorRT that decide the precision path, read by name so
    releases that drop them (``BuilderFlag.FP16/INT8``, the int8 calibrators) are handled."""

    version: str
    flags: frozenset[str]  # BuilderFlag member names present (FP16, INT8, GPU_FALLBACK)
    implicit_int8: bool  # IInt8EntropyCalibrator2 exists


def trt_caps(trt: Any) -> TrtCaps:
    flags = frozenset(n for n in ("FP16", "INT8", "GPU_FALLBACK") if hasattr(trt.BuilderFlag, n))
    return TrtCaps(str(trt.__version__), flags, hasattr(trt, "IInt8EntropyCalibrator2"))


@dataclass(frozen=True)
class PrecisionPlan:
    """Builder flags to set, whether to calibrate, and the path taken in words."""

    flags: tuple[str, ...]
    calibrate: bool
    path: str


def _precision_flags(wanted: Iterable[str], caps: TrtCaps, dla: bool) -> tuple[str, ...]:
    flags = [f for f in wanted if f in caps.flags]
    if dla and "GPU_FALLBACK" in caps.flags:
        flags.append("GPU_FALLBACK")
    return tuple(flags)


def precision_plan(precision: str, caps: TrtCaps, qdq: bool, dla: bool = False
                   ) -> PrecisionPlan:
    """How to build ``precision`` with this TensorRT. int8 keeps FP16 on so layers without
    int8 kernels fall back to half, not float; a Q/DQ model is built from its own scales
    (explicit quantization, no calibration); implicit calibration is used only for a float
    model and only where this TensorRT still has it (deprecated in 10.1, gone later)."""
    v = caps.version
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if qdq:
        return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), False,
                             "int8 explicit quantization (Q/DQ scales from the ONNX)")
    if precision == "fp32":
        return PrecisionPlan(_precision_flags((), caps, dla), False, "fp32")
    if precision == "fp16":
        if "FP16" not in caps.flags:
            raise EngineError(f"TensorRT {v} has no FP16 builder flag (its networks are strongly "
                              "typed): build --precision fp32, or export an fp16 ONNX")
        return PrecisionPlan(_precision_flags(("FP16",), caps, dla), False, "fp16")
    if not (caps.implicit_int8 and "INT8" in caps.flags):
        raise EngineError(f"TensorRT {v} has no implicit int8 calibration: give a Q/DQ ONNX with "
                          "symmetric int8 scales (explicit quantization) and --precision int8")
    return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), True,
                         "int8 implicit calibration (IInt8EntropyCalibrator2, deprecated since "
                         "TensorRT 10.1; a Q/DQ model avoids it)")


def profile_shapes(shape: tuple[int, ...], input_size: tuple[int, int]
                   ) -> tuple[tuple[int, ...], ...] | None:
    """(min, opt, max) shapes for an input with dynamic dims: batch 1 and the card's H x W,
    the only shape seg_ros feeds; None when ``shape`` is fully static (no profile needed)."""
    if all(int(d) >= 0 for d in shape):
        return None
    if len(shape) != 4:
        raise EngineError(f"dynamic input of shape {tuple(shape)} is not (N, 3, H, W): "
                          "re-export the model with an NCHW image input")
    fixed = (1, 3, *input_size)
    concrete = tuple(int(d) if int(d) >= 0 else fixed[i] for i, d in enumerate(shape))
    return concrete, concrete, concrete


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


# --- the build (needs tensorrt and a CUDA GPU) ------------------------------------------------


def open_builder(trt: Any, logger: Any, device_index: int,
                 runtime: Callable[[int], Any] = cuda_runtime) -> tuple[Any, Any]:
    """(CUDA runtime, ``trt.Builder``): the device is selected *before* the builder exists,
    since TensorRT builds on the calling thread's current device."""
    cuda = runtime(device_index)
    return cuda, trt.Builder(logger)


def parse_network(trt: Any, builder: Any, logger: Any, onnx: Path,
                  log: Callable[[str], None]) -> tuple[Any, Any]:
    """(network, parser) from the TensorRT-bound copy of ``onnx``; EngineError listing every
    parser error. Not STRONGLY_TYPED where precision flags exist: they must apply."""
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:  # TRT 8: explicit batch must be asked
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    data, changed = tensorrt_onnx(onnx)
    if changed:
        log(f"labels output {', '.join(changed)}: int32 for TensorRT (the ONNX keeps uint8)")
    if not parser.parse(data, str(onnx)):
        raise EngineError(format_parser_errors(onnx, parser_issues(parser)))
    return network, parser


def add_profile(builder: Any, network: Any, config: Any, card: ModelCard) -> Any:
    """An optimisation profile for the network's dynamic inputs (None when all are static);
    without one a dynamic-shape build fails."""
    profile = None
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        shapes = profile_shapes(tuple(inp.shape), card.input_size)
        if shapes is None:
            continue
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(inp.name, *shapes)
    if profile is not None and config.add_optimization_profile(profile) < 0:
        raise EngineError("TensorRT refused the optimisation profile for the dynamic input: "
                          "re-export the model with a fixed (1, 3, H, W) input")
    return profile


def load_timing_cache(config: Any, path: Path | None, log: Callable[[str], None]) -> None:
    """Attach the timing cache at ``path`` (or an empty one); a cache TensorRT refuses (made
    by another TensorRT or GPU) is replaced by an empty one, with a line saying so."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    if data and config.set_timing_cache(config.create_timing_cache(data), False):
        log(f"loaded timing cache {path} ({len(data)} bytes)")
        return
    if data:
        log(f"timing cache {path} does not match this GPU / TensorRT: starting a new one")
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        log("TensorRT refused an empty timing cache: building without one")


def configure(trt: Any, builder: Any, network: Any, opts: BuildOptions, card: ModelCard,
              plan: PrecisionPlan, log: Callable[[str], None]) -> tuple[Any, Any]:
    """(builder config, optimisation profile) for ``plan``: workspace, flags, DLA, timing
    cache and the profile of dynamic inputs."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if opts.dla_core is not None:
        check_dla_core(opts.dla_core, int(builder.num_DLA_cores))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
    load_timing_cache(config, opts.timing_cache, log)
    return config, add_profile(builder, network, config, card)


def attach_calibrator(trt: Any, config: Any, profile: Any, opts: BuildOptions, card: ModelCard,
                      cuda: Any, log: Callable[[str], None]) -> CalibrationFeed:
    """Implicit int8: frames of ``calib_data`` through an entropy calibrator, batch 1."""
    frames = list_frames(opts.calib_data or "", opts.calib_frames)
    feed = CalibrationFeed(CalibrationBatches(frames, card, batch_size=1), cuda, log)
    config.int8_calibrator = make_entropy_calibrator(trt, feed, opts.calib_cache, log)
    if profile is not None:
        config.set_calibration_profile(profile)
    log(f"int8: calibrating on {len(frames)} frames from {opts.calib_data} "
        f"(cache {opts.calib_cache})")
    return feed


def write_engine(out: Path, serialized: Any, card: ModelCard, facts: dict[str, object]) -> None:
    """The engine and its sidecar; the engine file appears only with its sidecar in place."""
    write_sidecar(card.with_provenance(**{PROVENANCE_KEY: facts}), out)
    write_bytes_atomic(out, bytes(serialized))


def _provenance(onnx: Path, opts: BuildOptions, gpu: GpuInfo, trt_version: str,
                plan: PrecisionPlan, t0: float, feed: CalibrationFeed | None
                ) -> dict[str, object]:
    sha = file_sha256(onnx)
    extra: dict[str, object] = {"precision_path": plan.path}
    if feed is not None:
        extra.update(calib_frames=feed.done, calib_data=Path(opts.calib_data or "").resolve().name)
    if opts.dla_core is not None:
        extra["dla_core"] = opts.dla_core
    key = opts.cache_key or engine_cache_key(sha, opts.precision, gpu, trt_version)
    return build_provenance(gpu, trt_version, opts.precision, sha, key,
                            workspace_mb=opts.workspace_mb, source=onnx.name,
                            build_seconds=round(time.perf_counter() - t0, 1), **extra)


def build_engine(onnx: str | Path, options: BuildOptions,
                 log: Callable[[str], None] = print) -> Path:
    """Build ``options.out`` from ``onnx``; writes the engine and its card sidecar. Returns
    the engine path. EngineError (one line) when tensorrt or a CUDA GPU is missing."""
    onnx = Path(onnx)
    opts = validate_build_options(onnx, options)
    missing = tensorrt_problems(opts.device_index)
    if missing:
        raise EngineError(unavailable_message("seg-ros build-engine (TensorRT)", missing))
    import tensorrt as trt

    assert opts.out is not None
    card, gpu, t0 = read_card(onnx), current_gpu(opts.device_index), time.perf_counter()
    if gpu is None:
        raise EngineError(f"CUDA GPU {opts.device_index} could not be queried: check nvidia-smi")
    plan = precision_plan(opts.precision, trt_caps(trt), is_qdq_model(onnx),
                          dla=opts.dla_core is not None)
    logger = trt.Logger(trt.Logger.WARNING)
    cuda, builder = open_builder(trt, logger, opts.device_index)
    network, _parser = parse_network(trt, builder, logger, onnx, log)
    config, profile = configure(trt, builder, network, opts, card, plan, log)
    feed = attach_calibrator(trt, config, profile, opts, card, cuda, log) if plan.calibrate \
        else None
    log(f"building {opts.precision} engine for {onnx.name} on {gpu.name} "
        f"(sm {gpu.compute_capability}, TensorRT {trt.__version__}): {plan.path}")
    serialized = builder.build_serialized_network(network, config)
    if feed is not None:
        feed.raise_if_failed(onnx.name)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build {onnx.name} at {opts.precision} (see the "
                          "log above): try a larger --workspace-mb or --precision fp16")
    if opts.timing_cache is not None:
        write_bytes_atomic(Path(opts.timing_cache), bytes(config.get_timing_cache().serialize()))
    write_engine(opts.out, serialized, card,
                 _provenance(onnx, opts, gpu, str(trt.__version__), plan, t0, feed))
    log(f"wrote {opts.out} ({opts.out.stat().st_size / 1e6:.1f} MB) in "
        f"{time.perf_counter() - t0:.1f} s")
    return opts.out
