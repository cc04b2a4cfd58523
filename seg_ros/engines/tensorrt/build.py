"""Build a TensorRT 10 engine from a seg_ros ONNX model (``seg-ros build-engine``).

CUDA device selected first (the builder works on the current device) -> ONNX parsed from a copy
whose label cast TensorRT supports (:mod:`seg_ros.engines.tensorrt.graph`), every parser error
reported -> an optimisation profile for dynamic inputs (batch 1, the card's H x W) -> the
precision plan this TensorRT supports (:func:`precision_plan`: builder flags where they exist,
explicit Q/DQ int8, or implicit calibration where it still exists, said in the log and the
sidecar) -> workspace limit -> optional DLA core with GPU fallback -> a timing cache per GPU and
TensorRT version -> the engine plus its model-card sidecar.

Argument checks (:mod:`seg_ros.engines.tensorrt.options`), the precision plan
(:mod:`seg_ros.engines.tensorrt.plan`) and the GPU-free steps here are plain functions tested on CPU
machines; the build itself runs only where tensorrt and a CUDA GPU are present.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.engines.calibration import CalibrationBatches, list_frames
from seg_ros.engines.gpu import GpuInfo, current_gpu, tensorrt_problems, unavailable_message
from seg_ros.engines.tensorrt.cache import (
    PROVENANCE_KEY,
    build_provenance,
    engine_cache_key,
    write_bytes_atomic,
)
from seg_ros.engines.tensorrt.calibrator import CalibrationFeed, make_entropy_calibrator
from seg_ros.engines.tensorrt.cuda_runtime import cuda_runtime
from seg_ros.engines.tensorrt.graph import tensorrt_onnx
from seg_ros.engines.tensorrt.options import (
    BuildOptions,
    check_dla_core,
    is_qdq_model,
    validate_build_options,
)
from seg_ros.engines.tensorrt.plan import PrecisionPlan, precision_plan, profile_shapes, trt_caps
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, file_sha256, read_card, write_sidecar


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

        code = get("code", "")
        issues.append(ParserIssue(str(getattr(code, "name", code)).rsplit(".", 1)[-1],
                                  str(get("desc", e)),
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


def trt_object(factory: Callable[..., Any], *args: Any, what: str) -> Any:
    """``factory(*args)`` for a TensorRT object whose creation can fail: the bindings raise
    ``TypeError: pybind11::init(): factory function returned nullptr`` when the C++ factory
    returns NULL (libraries that do not match the package, no usable GPU or driver, out of
    memory) and factory methods return None; both become one EngineError line."""
    try:
        obj = factory(*args)
    except TypeError as e:
        obj, cause = None, str(e).strip().splitlines()[0][:120] if str(e).strip() else "TypeError"
    else:
        cause = "it returned None"
    if obj is None:
        raise EngineError(f"TensorRT could not create its {what} ({cause}; see the TensorRT log "
                          "above): check that the TensorRT libraries match the tensorrt Python "
                          "package and the GPU and driver work (nvidia-smi), or use backend "
                          "'onnxruntime'")
    return obj


def open_builder(trt: Any, logger: Any, device_index: int,
                 runtime: Callable[[int], Any] | None = None) -> tuple[Any, Any]:
    """(CUDA runtime, ``trt.Builder``): the device is selected *before* the builder exists,
    since TensorRT builds on the calling thread's current device. ``runtime`` defaults to
    :func:`seg_ros.engines.tensorrt.cuda_runtime.cuda_runtime`."""
    cuda = (runtime or cuda_runtime)(device_index)
    return cuda, trt_object(trt.Builder, logger, what="Builder")


def parse_network(trt: Any, builder: Any, logger: Any, onnx: Path,
                  log: Callable[[str], None], plan: PrecisionPlan | None = None
                  ) -> tuple[Any, Any]:
    """(network, parser) from the TensorRT-bound copy of ``onnx`` (converted to fp16 when the
    plan says so); EngineError listing every parser error. Created without flags: explicit
    batch is the only mode since 10.0; not STRONGLY_TYPED on 10.x, where the precision flags
    must apply; 11.x networks are strongly typed whatever the flags."""
    plan = plan or PrecisionPlan((), False, "fp32")
    network = trt_object(builder.create_network, 0, what="network")
    parser = trt_object(trt.OnnxParser, network, logger, what="ONNX parser")
    data, changed = tensorrt_onnx(onnx, fp16=plan.convert == "fp16")
    if plan.convert == "fp16":
        log(f"{onnx.name}: parsed as an fp16 graph (I/O and the argmax/softmax tail fp32)")
    if changed:
        log(f"labels output {', '.join(changed)}: int32 for TensorRT (the ONNX keeps uint8)")
    if not parser.parse(data, str(onnx)):
        raise EngineError(format_parser_errors(onnx, parser_issues(parser)))
    return network, parser


def add_profile(builder: Any, network: Any, config: Any, card: ModelCard,
                max_batch: int = 1) -> Any:
    """An optimisation profile for the network's dynamic inputs (None when all are static);
    without one a dynamic-shape build fails. ``max_batch`` > 1 needs a dynamic batch."""
    profile = None
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        batch = int(next(iter(inp.shape)))
        if max_batch > 1 and batch >= 0:
            raise EngineError(f"--batch {max_batch}: the ONNX input {inp.name!r} has a fixed "
                              f"batch of {batch}: re-export it with `seg-ros "
                              "export --batch dynamic`")
        shapes = profile_shapes(tuple(inp.shape), card.input_size, max_batch, card.input_layout)
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
    config = trt_object(builder.create_builder_config, what="builder config")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if opts.dla_core is not None:
        check_dla_core(opts.dla_core, int(builder.num_DLA_cores))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
    load_timing_cache(config, opts.timing_cache, log)
    return config, add_profile(builder, network, config, card, opts.max_batch)


def attach_calibrator(trt: Any, config: Any, profile: Any, opts: BuildOptions, card: ModelCard,
                      cuda: Any, log: Callable[[str], None]) -> CalibrationFeed:
    """Implicit int8: frames of ``calib_data`` through an entropy calibrator, batch 1."""
    frames = list_frames(opts.calib_data or "", opts.calib_frames)
    feed = CalibrationFeed(CalibrationBatches(frames, card, batch_size=1), cuda, log)
    config.int8_calibrator = make_entropy_calibrator(trt, feed, opts.calib_cache, log)
    if profile is not None and not config.set_calibration_profile(profile):
        raise EngineError("TensorRT refused the calibration profile of the dynamic input: "
                          "re-export the model with a fixed (1, 3, H, W) input, or quantize it "
                          "with `seg-ros quantize MODEL --target tensorrt` (no calibrator)")
    log(f"int8: calibrating on {len(frames)} frames from {opts.calib_data} "
        f"(cache {opts.calib_cache})")
    return feed


def qdq_graph(onnx: Path, opts: BuildOptions, tmp: Path, log: Callable[[str], None]) -> Path:
    """Strongly typed int8: a symmetric int8 Q/DQ copy of ``onnx`` in ``tmp``, calibrated on
    ``opts.calib_data`` by onnxruntime (what ``seg-ros quantize --target tensorrt`` writes)."""
    from seg_ros.engines.quantize import quantize_onnx

    out = tmp / f"{onnx.stem}.trt-int8.onnx"
    log(f"int8 on a strongly typed TensorRT: quantizing {onnx.name} to symmetric int8 Q/DQ on "
        f"{opts.calib_frames} frames of {opts.calib_data} (save it once with `seg-ros quantize "
        f"{onnx.name} --target tensorrt` and build that to skip this step)")
    quantize_onnx(onnx, opts.calib_data or "", out, calib_frames=opts.calib_frames,
                  target="tensorrt", log=log)
    return out


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
    if opts.max_batch > 1:
        extra["max_batch"] = opts.max_batch  # the engine's profile: 1..max_batch frames
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
    with tempfile.TemporaryDirectory(prefix="seg_ros_trt_") as tmp:
        graph = qdq_graph(onnx, opts, Path(tmp), log) if plan.convert == "int8" else onnx
        network, _parser = parse_network(trt, builder, logger, graph, log, plan)
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
