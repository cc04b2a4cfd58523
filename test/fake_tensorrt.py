"""A stand-in for the ``tensorrt`` module, for machines without TensorRT and a GPU.

It offers the TensorRT Python API names seg_ros calls, with the real bindings' class names,
method parameter names, enum members and enum values (test_trt_conformance checks them against
the real ``tensorrt-cu12-bindings`` 10.3 / newest 10.x / newest 11.x wheels), in two modes:

- this module itself is TensorRT 10.3: ``BuilderFlag.FP16/INT8``, the int8 calibrators,
  ``set_calibration_profile``; ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` = 1;
- :func:`module` ("11.4.0") gives TensorRT 11.x: strongly typed networks only (no FP16/INT8
  builder flags, no calibrators, no ``int8_calibrator`` / ``set_calibration_profile``;
  ``STRONGLY_TYPED`` = 0, deprecated and ignored), so a build records the graph's types.

It records what it is asked (:data:`RECORD`), fails where the real API reports failure when told
to (:data:`FAIL`: the factory ``TypeError`` of ``Builder``/``Runtime``/``OnnxParser``, parse
False with errors, build None, deserialize None, no execution context, execute_async_v3 False,
set_calibration_profile False), and "runs" an engine with onnxruntime on the CPU over host
arrays, so the orchestration in ``seg_ros.engines.tensorrt.build`` and ``TensorRTEngine`` runs
end to end. It proves nothing about TensorRT kernels: ``make gpu-check`` does that on a GPU.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
from typing import Any

import numpy as np
import onnx

__version__ = "10.3.0"
DTYPE = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF",
         onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64",
         onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.INT8: "INT8",
         onnx.TensorProto.BOOL: "BOOL"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64,
         "UINT8": np.uint8, "INT8": np.int8, "BOOL": np.bool_}
NULLPTR = "pybind11::init(): factory function returned nullptr"  # what the real bindings raise



class _Enum(enum.IntEnum):
    """pybind11 enums: ``int()`` is the value, ``str()`` is 'Type.MEMBER'."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


# enum values as in the real bindings (10.3 .. 11.4 agree on these)
class DataType(_Enum):
    FLOAT, HALF, INT8, INT32, BOOL, UINT8, FP8, BF16, INT64, INT4 = range(10)


class TensorIOMode(_Enum):
    NONE, INPUT, OUTPUT = range(3)


class MemoryPoolType(_Enum):
    WORKSPACE = 0


class DeviceType(_Enum):
    GPU, DLA = range(2)


class ErrorCode(_Enum):
    SUCCESS, INTERNAL_ERROR, UNSUPPORTED_NODE = 0, 1, 8


class BuilderFlag(_Enum):
    FP16, INT8, GPU_FALLBACK = 0, 1, 3


class NetworkDefinitionCreationFlag(_Enum):
    EXPLICIT_BATCH, STRONGLY_TYPED = 0, 1


class _TensorRT11:
    """TensorRT 11.x: no precision builder flags, STRONGLY_TYPED renumbered (same class names)."""

    class BuilderFlag(_Enum):
        GPU_FALLBACK = 3

    class NetworkDefinitionCreationFlag(_Enum):
        STRONGLY_TYPED = 0


BuilderFlag11 = _TensorRT11.BuilderFlag
NetworkDefinitionCreationFlag11 = _TensorRT11.NetworkDefinitionCreationFlag

RECORD: dict[str, Any] = {}  # what the last build and load were asked, for the tests
FAIL: set[str] = set()  # builder runtime parser parse build deserialize context execute calib
DLA_CORES = 0


class Logger:
    class Severity(_Enum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    WARNING = Severity.WARNING

    def __init__(self, min_severity: Any = Severity.WARNING) -> None:
        self.min_severity = min_severity


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


def _dims(vi: Any) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1
                 for d in vi.type.tensor_type.shape.dim)


def _nullptr(what: str) -> None:
    if what in FAIL:
        raise TypeError(NULLPTR)


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.model = onnx.ModelProto()  # OnnxParser.parse fills it

    @property
    def num_inputs(self) -> int:
        return len(self.model.graph.input)

    def get_input(self, index: int) -> Any:
        vi = self.model.graph.input[index]
        return types.SimpleNamespace(name=vi.name, shape=_dims(vi))


class ParserError:
    def __init__(self, node: int, name: str, op: str, desc: str) -> None:
        self._node, self._name, self._op, self._desc = node, name, op, desc

    def code(self) -> ErrorCode:
        return ErrorCode.UNSUPPORTED_NODE

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        _nullptr("parser")
        self.network = network
        self.errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> ParserError:
        return self.errors[index]

    def parse(self, model: bytes, path: str | None = None) -> bool:
        self.network.model = onnx.load_from_string(model)
        RECORD["parsed_bytes"] = model
        if "parse" in FAIL:
            node = self.network.model.graph.node[0]
            self.errors.append(ParserError(0, node.name, node.op_type,
                                           "No importer registered for op"))
            return False
        return True


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data or b"timings"

    def serialize(self) -> bytes:
        return self.data


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        self.shapes[input] = (min, opt, max)


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: list[str] = []
        self.profiles: list[Any] = []
        self.timing: ITimingCache | None = None
        self.default_device_type, self.DLA_core = DeviceType.GPU, -1

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        RECORD["workspace"] = pool_size

    def set_flag(self, flag: Any) -> None:
        self.flags.append(flag.name)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.timing = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class IBuilderConfig10(IBuilderConfig):
    """TensorRT 10: implicit int8 calibration still exists."""

    def __init__(self) -> None:
        super().__init__()
        self.int8_calibrator: Any = None

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        return "calibration_profile" not in FAIL


class Builder:
    def __init__(self, logger: Logger) -> None:
        _nullptr("builder")
        RECORD["builder_device"] = RECORD.get("current_device")
        self.num_DLA_cores = DLA_CORES
        self.major = int(sys.modules[type(self).__module__].__version__.split(".")[0])

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        RECORD["network_flags"] = flags
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig10() if self.major < 11 else IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig
                                 ) -> bytes | None:
        RECORD.update(flags=list(config.flags), profiles=len(config.profiles),
                      dla=(config.default_device_type.name, config.DLA_core))
        # 11.x: every network strongly typed: the precision is the graph's
        RECORD["strongly_typed"] = self.major >= 11
        cal = getattr(config, "int8_calibrator", None)
        if cal is not None:
            batches = 0
            if cal.read_calibration_cache() is None:
                while cal.get_batch(["input"]) is not None:  # as the C++ side: None ends it
                    batches += 1
                cal.write_calibration_cache(memoryview(b"TRT-10-EntropyCalibration2\n"))
            RECORD["calibration_batches"] = batches
        if "build" in FAIL:
            return None
        return json.dumps({"onnx": network.model.SerializeToString().hex()}).encode()


class ICudaEngine:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        io = [(vi, True) for vi in model.graph.input] + [(vi, False) for vi in model.graph.output]
        self.io = {vi.name: (is_in, DTYPE[vi.type.tensor_type.elem_type], _dims(vi))
                   for vi, is_in in io}
        self.num_io_tensors = len(self.io)

    def get_tensor_name(self, index: int) -> str:
        return list(self.io)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if self.io[name][0] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.io[name][1]]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.io[name][2]

    def create_execution_context(self) -> IExecutionContext | None:
        return None if "context" in FAIL else IExecutionContext(self)


class IExecutionContext:
    """Runs the parsed graph with onnxruntime on the host arrays bound by address."""

    def __init__(self, engine: ICudaEngine) -> None:
        import onnxruntime as ort

        self.engine = engine
        self.session = ort.InferenceSession(engine.model.SerializeToString(),
                                            providers=["CPUExecutionProvider"])
        self.shapes = {n: v[2] for n, v in engine.io.items()}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        """Dynamic dims: the input's batch for dim 0 (outputs follow the input), else 1."""
        batch = max(1, next(self.shapes[n][0] for n, v in self.engine.io.items() if v[0]))
        return tuple((batch if i == 0 else 1) if d < 0 else d
                     for i, d in enumerate(self.shapes[name]))

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = memory
        return True

    def _array(self, name: str) -> np.ndarray:
        dtype = np.dtype(NUMPY[self.engine.io[name][1]])
        shape = self.get_tensor_shape(name)
        n = int(np.prod(shape)) * dtype.itemsize
        raw = (ctypes.c_ubyte * n).from_address(self.addresses[name])
        return np.frombuffer(memoryview(raw), np.uint8).view(dtype).reshape(shape)

    def execute_async_v3(self, stream_handle: int) -> bool:
        RECORD["stream"] = stream_handle
        if "execute" in FAIL:
            return False
        inputs = {n: self._array(n) for n, v in self.engine.io.items() if v[0]}
        names = [n for n, v in self.engine.io.items() if not v[0]]
        for name, value in zip(names, self.session.run(names, inputs)):
            np.copyto(self._array(name), value)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        _nullptr("runtime")
        self.DLA_core = -1

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        RECORD["runtime_dla_core"] = self.DLA_core
        if "deserialize" in FAIL:
            return None
        return ICudaEngine(onnx.load_from_string(
            bytes.fromhex(json.loads(serialized_engine)["onnx"])))


# names every mode shares; the 10.x-only ones are added by module() for < 11
SHARED = ("DataType", "TensorIOMode", "MemoryPoolType", "DeviceType", "ErrorCode", "Logger",
          "INetworkDefinition", "OnnxParser", "ParserError", "ITimingCache",
          "IOptimizationProfile", "IBuilderConfig", "ICudaEngine", "IExecutionContext",
          "Runtime")


def module(version: str = "10.3.0") -> types.ModuleType:
    """A ``tensorrt`` module of ``version``'s generation: 10.x as this module, 11.x strongly
    typed (no FP16/INT8 flags, no calibrators). Builders made from it read its version."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version  # type: ignore[attr-defined]
    for name in SHARED:
        setattr(mod, name, globals()[name])
    eleven = int(version.split(".")[0]) >= 11
    mod.BuilderFlag = BuilderFlag11 if eleven else BuilderFlag  # type: ignore[attr-defined]
    mod.NetworkDefinitionCreationFlag = (  # type: ignore[attr-defined]
        NetworkDefinitionCreationFlag11 if eleven else NetworkDefinitionCreationFlag)
    if not eleven:
        mod.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]
    sys.modules[f"fake_tensorrt_{version}"] = mod

    class _Builder(Builder):
        pass

    _Builder.__module__ = f"fake_tensorrt_{version}"
    _Builder.__name__ = _Builder.__qualname__ = "Builder"
    mod.Builder = _Builder  # type: ignore[attr-defined]
    return mod
