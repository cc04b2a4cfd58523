"""A stand-in for the ``tensorrt`` module, for machines without TensorRT and a GPU.

It offers only the TensorRT 10 Python API names seg_ros calls (as the bindings define them in
NVIDIA/TensorRT python/src/infer/pyCore.cpp, pyGraph.cpp, pyInt8.cpp), records what it is
asked, and "runs" an engine with onnxruntime on the CPU over host arrays, so the orchestration
in ``trt_build`` and ``TensorRTEngine`` -- call order, arguments, return-value checks, the
int32 labels copy, the calibrator, the sidecar -- runs end to end. It proves nothing about
TensorRT itself: ``make gpu-check`` does that on a GPU.
"""

from __future__ import annotations

import ctypes
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx

__version__ = "10.3.0"
DTYPE = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF",
         onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64",
         onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.INT8: "INT8"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64,
         "UINT8": np.uint8, "INT8": np.int8}

MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
BuilderFlag = SimpleNamespace(FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU_FALLBACK")
DeviceType = SimpleNamespace(GPU="GPU", DLA="DLA")
NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
RECORD: dict[str, Any] = {}  # what the last build and load were asked, for the tests
DLA_CORES = 0


class Logger:
    WARNING = 2

    def __init__(self, severity: int) -> None:
        self.severity = severity


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


def _dims(vi: Any) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1
                 for d in vi.type.tensor_type.shape.dim)


class Network:
    def __init__(self, flags: int) -> None:
        self.flags, self.model = flags, None

    @property
    def num_inputs(self) -> int:
        return len(self.model.graph.input)

    def get_input(self, i: int) -> Any:
        vi = self.model.graph.input[i]
        return SimpleNamespace(name=vi.name, shape=_dims(vi))


class OnnxParser:
    num_errors = 0

    def __init__(self, network: Network, logger: Logger) -> None:
        self.network = network

    def parse(self, data: bytes, path: str | None = None) -> bool:
        self.network.model = onnx.load_from_string(data)
        RECORD["parsed_bytes"] = data
        return True


class TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data or b"timings"

    def serialize(self) -> bytes:
        return self.data


class Config:
    def __init__(self) -> None:
        self.flags: list[str] = []
        self.profiles: list[Any] = []
        self.int8_calibrator = None
        self.timing = None
        self.default_device_type, self.DLA_core = "GPU", -1

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        RECORD["workspace"] = size

    def set_flag(self, flag: str) -> None:
        self.flags.append(flag)

    def create_timing_cache(self, data: bytes) -> TimingCache:
        return TimingCache(data)

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        self.timing = cache
        return True

    def get_timing_cache(self) -> TimingCache:
        return self.timing

    def add_optimization_profile(self, profile: Any) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: Any) -> bool:
        return True


class Builder:
    def __init__(self, logger: Logger) -> None:
        RECORD["builder_device"] = RECORD.get("current_device")
        self.num_DLA_cores = DLA_CORES

    def create_network(self, flags: int = 0) -> Network:
        return Network(flags)

    def create_builder_config(self) -> Config:
        return Config()

    def create_optimization_profile(self) -> Any:
        shapes: dict[str, tuple] = {}
        return SimpleNamespace(shapes=shapes, set_shape=lambda n, *s: shapes.update({n: s}))

    def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
        RECORD.update(flags=list(config.flags), profiles=len(config.profiles),
                      dla=(config.default_device_type, config.DLA_core))
        cal = config.int8_calibrator
        if cal is not None:
            batches = 0
            if cal.read_calibration_cache() is None:
                while cal.get_batch(["input"]) is not None:  # as the C++ side: None ends it
                    batches += 1
                cal.write_calibration_cache(memoryview(b"TRT-10-EntropyCalibration2\n"))
            RECORD["calibration_batches"] = batches
        return json.dumps({"onnx": network.model.SerializeToString().hex()}).encode()


class Engine:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        io = [(vi, True) for vi in model.graph.input] + [(vi, False) for vi in model.graph.output]
        self.io = {vi.name: (is_in, DTYPE[vi.type.tensor_type.elem_type], _dims(vi))
                   for vi, is_in in io}
        self.num_io_tensors = len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return list(self.io)[i]

    def get_tensor_mode(self, name: str) -> str:
        return "TensorIOMode.INPUT" if self.io[name][0] else "TensorIOMode.OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return f"DataType.{self.io[name][1]}"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.io[name][2]

    def create_execution_context(self) -> Context:
        return Context(self)


class Context:
    """Runs the parsed graph with onnxruntime on the host arrays bound by address."""

    def __init__(self, engine: Engine) -> None:
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

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def _array(self, name: str) -> np.ndarray:
        dtype = np.dtype(NUMPY[self.engine.io[name][1]])
        shape = self.get_tensor_shape(name)
        n = int(np.prod(shape)) * dtype.itemsize
        raw = (ctypes.c_ubyte * n).from_address(self.addresses[name])
        return np.frombuffer(raw, np.uint8).view(dtype).reshape(shape)

    def execute_async_v3(self, stream_handle: int) -> bool:
        RECORD["stream"] = stream_handle
        inputs = {n: self._array(n) for n, v in self.engine.io.items() if v[0]}
        names = [n for n, v in self.engine.io.items() if not v[0]]
        for name, value in zip(names, self.session.run(names, inputs)):
            np.copyto(self._array(name), value)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
        RECORD["runtime_dla_core"] = self.DLA_core
        return Engine(onnx.load_from_string(bytes.fromhex(json.loads(data)["onnx"])))
