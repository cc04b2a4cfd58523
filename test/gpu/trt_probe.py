"""Run inside a subprocess where a REAL binding module is importable (see trt_conformance.py);
prints one JSON report. ``tensorrt``: every TensorRT name, enum member and method signature
seg_ros uses, the stand-in module's against the real ones, and seg_ros's build planning, I/O
checks and failure lines run against the real module. ``cuda``: the cuda-python runtime calls.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

# (class, member, parameter names seg_ros passes (None: a property / attribute)); "10" rows
# only where the module still has precision flags and calibrators (TensorRT 10.x)
USED: list[tuple[str, str, tuple[str, ...] | None, str]] = [
    ("Logger", "__init__", ("min_severity",), "all"),
    ("Builder", "__init__", ("logger",), "all"),
    ("Builder", "create_network", ("flags",), "all"),
    ("Builder", "create_builder_config", (), "all"),
    ("Builder", "create_optimization_profile", (), "all"),
    ("Builder", "build_serialized_network", ("network", "config"), "all"),
    ("Builder", "num_DLA_cores", None, "all"),
    ("OnnxParser", "__init__", ("network", "logger"), "all"),
    ("OnnxParser", "parse", ("model", "path"), "all"),
    ("OnnxParser", "num_errors", None, "all"),
    ("OnnxParser", "get_error", ("index",), "all"),
    ("ParserError", "code", (), "all"), ("ParserError", "desc", (), "all"),
    ("ParserError", "node", (), "all"), ("ParserError", "node_name", (), "all"),
    ("ParserError", "node_operator", (), "all"),
    ("INetworkDefinition", "num_inputs", None, "all"),
    ("INetworkDefinition", "get_input", ("index",), "all"),
    ("ITensor", "name", None, "all"), ("ITensor", "shape", None, "all"),
    ("IOptimizationProfile", "set_shape", ("input", "min", "opt", "max"), "all"),
    ("IBuilderConfig", "set_memory_pool_limit", ("pool", "pool_size"), "all"),
    ("IBuilderConfig", "set_flag", ("flag",), "all"),
    ("IBuilderConfig", "default_device_type", None, "all"),
    ("IBuilderConfig", "DLA_core", None, "all"),
    ("IBuilderConfig", "create_timing_cache", ("serialized_timing_cache",), "all"),
    ("IBuilderConfig", "set_timing_cache", ("cache", "ignore_mismatch"), "all"),
    ("IBuilderConfig", "get_timing_cache", (), "all"),
    ("IBuilderConfig", "add_optimization_profile", ("profile",), "all"),
    ("ITimingCache", "serialize", (), "all"),
    ("IBuilderConfig", "int8_calibrator", None, "10"),
    ("IBuilderConfig", "set_calibration_profile", ("profile",), "10"),
    ("Runtime", "__init__", ("logger",), "all"),
    ("Runtime", "DLA_core", None, "all"),
    ("Runtime", "deserialize_cuda_engine", ("serialized_engine",), "all"),
    ("ICudaEngine", "num_io_tensors", None, "all"),
    ("ICudaEngine", "get_tensor_name", ("index",), "all"),
    ("ICudaEngine", "get_tensor_mode", ("name",), "all"),
    ("ICudaEngine", "get_tensor_dtype", ("name",), "all"),
    ("ICudaEngine", "get_tensor_shape", ("name",), "all"),
    ("ICudaEngine", "create_execution_context", (), "all"),
    ("IExecutionContext", "set_input_shape", ("name", "shape"), "all"),
    ("IExecutionContext", "get_tensor_shape", ("name",), "all"),
    ("IExecutionContext", "set_tensor_address", ("name", "memory"), "all"),
    ("IExecutionContext", "execute_async_v3", ("stream_handle",), "all"),
    ("IInt8EntropyCalibrator2", "__init__", (), "10"),
]
ENUMS = {"MemoryPoolType": ["WORKSPACE"], "DeviceType": ["DLA", "GPU"],
         "TensorIOMode": ["INPUT", "OUTPUT"], "BuilderFlag": ["GPU_FALLBACK"],
         "DataType": ["FLOAT", "HALF", "INT8", "INT32", "INT64", "BOOL", "UINT8"]}
ENUMS_10 = {"BuilderFlag": ["FP16", "INT8"]}
# the classes seg_ros constructs itself (the rest come from TensorRT's factories)
CONSTRUCTED = {"Logger", "Builder", "Runtime", "OnnxParser", "IInt8EntropyCalibrator2"}
# stand-in class -> the real class it plays
FAKE_AS = {"IBuilderConfig10": "IBuilderConfig"}


def overloads(cls: Any, name: str) -> list[list[str]]:
    """Parameter names (without self) of each overload, from the pybind11 docstring."""
    doc = getattr(getattr(cls, name), "__doc__", None) or ""
    sigs = []
    for m in re.finditer(rf"(?:^|\n)\s*(?:\d+\. )?{re.escape(name)}\((.*?)\) ->", doc):
        params, depth, cur = [], 0, ""
        for ch in m.group(1):
            depth += ch in "[(<"
            depth -= ch in "])>"
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        params.append(cur)
        names = [p.split(":")[0].strip() for p in params if p.strip()]
        sigs.append([n for n in names if n != "self"])
    return sigs


def check_member(trt: Any, cls_name: str, member: str, params: tuple[str, ...] | None
                 ) -> str | None:
    cls = getattr(trt, cls_name, None)
    if cls is None:
        return f"{cls_name} missing"
    if member not in dir(cls):
        return f"{cls_name}.{member} missing"
    if params is None:
        return None
    sigs = overloads(cls, member)
    if not any(s[:len(params)] == list(params) for s in sigs):
        return f"{cls_name}.{member}{params} matches none of {sigs}"
    return None


def check_used(trt: Any, ten: bool) -> tuple[list[str], list[str]]:
    """(problems, names checked): every USED row and enum member for this generation; on a
    module without precision flags, the 10.x-only names must be absent (the plan relies on)."""
    problems, checked = [], []
    for cls, member, params, gen in USED:
        if gen == "10" and not ten:
            if getattr(trt, cls, None) is not None and member in dir(getattr(trt, cls)):
                problems.append(f"{cls}.{member} exists although BuilderFlag.FP16 does not")
            continue
        checked.append(f"{cls}.{member}")
        problem = check_member(trt, cls, member, params)
        if problem:
            problems.append(problem)
    for enums in (ENUMS, ENUMS_10) if ten else (ENUMS,):
        for name, members in enums.items():
            for m in members:
                checked.append(f"{name}.{m}")
                if not hasattr(getattr(trt, name), m):
                    problems.append(f"{name}.{m} missing")
    return problems, checked


def check_fake(trt: Any, ten: bool) -> list[str]:
    """The stand-in module of this generation against the real one: module names present or
    absent alike, enum values equal, each method's parameter names those of a real overload."""
    import fake_tensorrt

    fake = fake_tensorrt.module(trt.__version__)
    problems = []
    for name in ("IInt8EntropyCalibrator2",):
        if hasattr(fake, name) != hasattr(trt, name):
            problems.append(f"stand-in {name}: present {hasattr(fake, name)}, real "
                            f"{hasattr(trt, name)}")
    for name in ("DataType", "TensorIOMode", "MemoryPoolType", "DeviceType", "ErrorCode",
                 "BuilderFlag", "NetworkDefinitionCreationFlag"):
        for member in getattr(fake, name):
            real = getattr(getattr(trt, name), member.name, None)
            if real is None or int(real) != int(member):
                problems.append(f"stand-in {name}.{member.name} = {int(member)}, real {real!r}")
    classes = [getattr(fake, n) for n in fake_tensorrt.SHARED if inspect.isclass(
        getattr(fake, n)) and not issubclass(getattr(fake, n), int)]
    classes += [fake.Builder, fake_tensorrt.IBuilderConfig10] if ten else [fake.Builder]
    for cls in classes:
        real_name = FAKE_AS.get(cls.__name__, cls.__name__)
        for member, fn in vars(cls).items():
            if not inspect.isfunction(fn) or (member.startswith("_") and not (
                    member == "__init__" and real_name in CONSTRUCTED)):
                continue
            params = tuple(inspect.signature(fn).parameters)[1:]
            problem = check_member(trt, real_name, member, params)
            if problem:
                problems.append(f"stand-in {cls.__name__}: {problem}")
    return problems


def run_project(trt: Any) -> dict[str, Any]:
    """seg_ros's TensorRT code against the real module, as far as no GPU allows."""
    import numpy as np

    import seg_ros.engines.tensorrt.build as trt_build
    from seg_ros.engines.tensorrt.bindings import TRT_TO_NUMPY, numpy_dtype, trt_dtype_name
    from seg_ros.engines.tensorrt.engine import TensorRTEngine
    from seg_ros.engines.tensorrt.plan import precision_plan, trt_caps
    from seg_ros.errors import EngineError

    caps = trt_caps(trt)
    plans = {}
    for name, precision, qdq in (("fp32", "fp32", False), ("fp16", "fp16", False),
                                 ("int8", "int8", False), ("int8-qdq", "int8", True)):
        plan = precision_plan(precision, caps, qdq)
        for flag in plan.flags:
            getattr(trt.BuilderFlag, flag)  # every flag the plan sets exists
        plans[name] = {"flags": list(plan.flags), "convert": plan.convert,
                       "calibrate": plan.calibrate, "strongly_typed": plan.strongly_typed}
    dtypes = {n: str(numpy_dtype(getattr(trt.DataType, n))) for n in TRT_TO_NUMPY}
    assert all(np.dtype(v) == TRT_TO_NUMPY[k] for k, v in dtypes.items())
    modes = [trt_dtype_name(trt.TensorIOMode.INPUT), trt_dtype_name(trt.TensorIOMode.OUTPUT)]
    errors = {"build": build_until_the_gpu(trt)}
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        trt_build.open_builder(trt, logger, 0, runtime=lambda index: None)
    except EngineError as e:
        errors["builder"] = str(e)
    engine = TensorRTEngine.__new__(TensorRTEngine)
    engine.built = {}
    try:
        engine._deserialize(trt, Path("model.engine"))
    except EngineError as e:
        errors["runtime"] = str(e)
    return {"io": io_binding(trt),
            "caps": {"flags": sorted(caps.flags), "implicit_int8": caps.implicit_int8,
                     "strongly_typed": caps.strongly_typed},
            "plans": plans, "dtypes": dtypes, "modes": modes, "errors": errors}


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "camvid.onnx"


def build_until_the_gpu(trt: Any) -> str:
    """``seg-ros build-engine models/camvid.onnx`` (fp16) with the real module: argument checks,
    the precision plan, the device, then the real ``trt.Builder`` -- where no GPU stops it.
    Returns the one line it ends with."""
    import tempfile
    from unittest import mock

    import seg_ros.engines.tensorrt.build as trt_build
    from seg_ros.engines.gpu import GpuInfo
    from seg_ros.engines.tensorrt.options import BuildOptions
    from seg_ros.errors import EngineError

    # past the GPU checks to the real trt.Builder (their arguments do not matter here)
    with mock.patch.multiple(trt_build, tensorrt_problems=lambda *a, **k: [],
                             current_gpu=lambda *a, **k: GpuInfo("no GPU here", "8.7"),
                             cuda_runtime=lambda *a, **k: None), \
            tempfile.TemporaryDirectory() as tmp:
        try:
            trt_build.build_engine(SHIPPED, BuildOptions(out=Path(tmp) / "m.engine"),
                                   log=lambda s: None)
        except EngineError as e:
            return str(e)
    return "built"


def io_binding(trt: Any) -> dict[str, Any]:
    """The engine's I/O checks (tensor_specs, validate_specs) over an engine answering with the
    real module's TensorIOMode / DataType members, as the shipped model's engine would."""
    from seg_ros.engines.tensorrt.bindings import tensor_specs, validate_specs
    from seg_ros.model_card import read_card

    card = read_card(SHIPPED)
    h, w = card.input_size
    io = {"input": (trt.TensorIOMode.INPUT, trt.DataType.FLOAT, (1, 3, h, w)),
          "labels": (trt.TensorIOMode.OUTPUT, trt.DataType.INT32, (1, h, w)),
          "confidence": (trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT, (1, h, w))}

    class Engine:
        num_io_tensors = len(io)

        def get_tensor_name(self, index: int) -> str:
            return list(io)[index]

        def get_tensor_mode(self, name: str) -> Any:
            return io[name][0]

        def get_tensor_dtype(self, name: str) -> Any:
            return io[name][1]

        def get_tensor_shape(self, name: str) -> Any:
            return io[name][2]

    inp, outputs = validate_specs(tensor_specs(Engine()), card, "probe.engine")
    return {"input": [inp.name, str(inp.dtype)],
            "outputs": [[o.name, str(o.dtype)] for o in outputs]}


def probe_tensorrt() -> dict[str, Any]:
    import tensorrt_bindings as trt

    sys.modules["tensorrt"] = trt  # what the tensorrt meta package re-exports
    ten = hasattr(trt.BuilderFlag, "FP16")
    problems, checked = check_used(trt, ten)
    return {"version": trt.__version__, "problems": problems, "checked": checked,
            "fake_problems": check_fake(trt, ten), **run_project(trt)}


CUDA_USED = ["cudaSetDevice", "cudaStreamCreate", "cudaMallocHost", "cudaMalloc",
             "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaFreeHost", "cudaFree",
             "cudaStreamDestroy", "cudaStream_t", "cudaMemcpyKind", "cudaError_t"]


def probe_cuda() -> dict[str, Any]:
    import cuda.bindings
    from cuda.bindings import runtime as rt

    from seg_ros.engines.tensorrt.cuda_runtime import CudaPythonRuntime, stream_handle
    from seg_ros.errors import EngineError

    problems = [n for n in CUDA_USED if not hasattr(rt, n)]
    for kind in ("cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"):
        if not hasattr(rt.cudaMemcpyKind, kind):
            problems.append(f"cudaMemcpyKind.{kind}")
    sig = list(inspect.signature(rt.cudaMemcpyAsync).parameters)
    if sig != ["dst", "src", "count", "kind", "stream"]:
        problems.append(f"cudaMemcpyAsync{tuple(sig)}")
    error = None
    try:
        CudaPythonRuntime(0)
    except EngineError as e:
        error = str(e)
    return {"version": cuda.bindings.__version__, "module": rt.__file__, "problems": problems,
            "no_driver": error, "stream": stream_handle(rt.cudaStream_t(0x1234))}


if __name__ == "__main__":
    report = probe_tensorrt() if sys.argv[1] == "tensorrt" else probe_cuda()
    print(json.dumps(report))
