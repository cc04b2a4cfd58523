"""TensorRT 10.3 .. 11.x backend: a deserialized engine run through the named-tensor API.

Given an ``.onnx`` path the engine comes from the cache (:mod:`seg_ros.engines.tensorrt.cache`),
built once per model, precision, GPU and TensorRT version; given an ``.engine`` its sidecar
must record this GPU and TensorRT. Buffers and the stream come from
:mod:`seg_ros.engines.tensorrt.cuda_runtime`, allocated once; every TensorRT call that can fail is
checked and turned into one EngineError line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.engines.gpu import (
    GpuInfo,
    current_gpu,
    parse_device,
    tensorrt_problems,
    unavailable_message,
)
from seg_ros.engines.tensorrt.bindings import (
    TensorSpec,
    concrete_shape,
    tensor_specs,
    validate_specs,
)
from seg_ros.engines.tensorrt.cache import (
    DEFAULT_CACHE_DIR,
    PROVENANCE_KEY,
    check_engine_compat,
    ensure_engine,
)
from seg_ros.engines.tensorrt.cuda_buffers import Buffer
from seg_ros.engines.tensorrt.cuda_runtime import cuda_runtime
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, read_sidecar

REBUILD = "rebuild it with `seg-ros build-engine`"


def engine_from_onnx(onnx: Path, cache_dir: str | Path, precision: str, device_index: int,
                     gpu: GpuInfo, trt_version: str, log: Callable[[str], None],
                     calib_data: str | Path | None = None) -> Path:
    """The cached engine of ``onnx``, built here (once) when the cache has none."""
    from seg_ros.engines.tensorrt.build import build_engine
    from seg_ros.engines.tensorrt.options import BuildOptions

    def build(src: Path, out: Path, key: str, timing: Path) -> Path:
        return build_engine(src, BuildOptions(
            precision=precision, out=out, cache_key=key, timing_cache=timing,
            device_index=device_index, calib_data=calib_data), log=log)

    extra: dict[str, object] | None = (
        {"calib": Path(calib_data).resolve().name} if calib_data else None)
    return ensure_engine(onnx, cache_dir, precision, gpu, trt_version, build, extra=extra,
                         log=log)


def checked(ok: Any, what: str, source: str) -> None:
    """EngineError when a TensorRT call that reports failure by return value failed."""
    if not ok:
        raise EngineError(f"TensorRT {what} failed for {source} (see the TensorRT log above): "
                          f"{REBUILD}")


class TensorRTEngine:
    """A deserialized TensorRT engine with pinned host + device buffers and one CUDA stream.

    ``path`` is an ``.engine`` with its sidecar, or an ``.onnx`` model: then the engine comes
    from the cache in ``engine_cache_dir`` (default ``~/.cache/seg_ros/engines``) at
    ``precision`` (default fp16; int8 with ``calib_data``); ``cuda_buffers``: 'auto',
    'cuda-python' or 'torch' (:func:`seg_ros.engines.tensorrt.cuda_runtime.cuda_runtime`); ``log``
    receives the build/cache messages (the node's logger).
    """

    backend = "tensorrt"
    max_batch = 1  # frames per call (built with --batch N: N)
    _batch = 1     # the batch size the context's input shape is set to

    def __init__(self, path: Path, device: str = "cuda", threads: int = 0,
                 engine_cache_dir: str | None = None, precision: str = "fp16",
                 calib_data: str | None = None, cuda_buffers: str = "auto",
                 log: Callable[[str], None] = print, **_: object) -> None:
        path = Path(path)
        index = parse_device("cuda" if device == "cpu" else device)
        missing = tensorrt_problems(index)
        if missing:
            raise EngineError(unavailable_message("the TensorRT backend", missing))
        import tensorrt as trt

        gpu = current_gpu(index)
        if gpu is None:
            raise EngineError(f"CUDA GPU {index} could not be queried: check nvidia-smi")
        self.cuda = cuda_runtime(index, cuda_buffers)  # the device, before any TensorRT object
        if path.suffix == ".onnx":
            path = engine_from_onnx(path, engine_cache_dir or DEFAULT_CACHE_DIR, precision,
                                    index, gpu, str(trt.__version__), log, calib_data)
        self.path = path
        self.card: ModelCard = read_sidecar(path)
        check_engine_compat(self.card, gpu, str(trt.__version__), str(path))
        self.built: dict[str, Any] = dict(self.card.provenance.get(PROVENANCE_KEY, {}))
        self.engine = self._deserialize(trt, path)
        self._gpu, self._device_index = gpu, index
        inp, outputs = validate_specs(tensor_specs(self.engine), self.card, str(path))
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError(f"TensorRT could not create an execution context for {path} "
                              "(out of GPU memory?): free GPU memory or use a smaller model")
        # (1, 3, H, W), or (1, H, W, 3) for a channels-last graph (card input_layout)
        self.input_shape: tuple[int, int, int, int] = self.card.input_shape()
        self.input_name = inp.name
        # built with --batch N: buffers for N frames, the input shape set per call
        self.max_batch = int(self.built.get("max_batch", 1)) if inp.shape[0] < 0 else 1
        self._batch = self.max_batch
        checked(self.context.set_input_shape(inp.name, self.card.input_shape(self.max_batch)),
                "set_input_shape", str(path))
        self._buf = self._bind(inp, outputs)
        self.output_names = [s.name for s in outputs]

    def _deserialize(self, trt: Any, path: Path) -> Any:
        """The engine, on the DLA core its sidecar records (set before deserializing)."""
        self._logger = trt.Logger(trt.Logger.WARNING)
        from seg_ros.engines.tensorrt.build import trt_object

        self._runtime = trt_object(trt.Runtime, self._logger, what="Runtime")
        if self.built.get("dla_core") is not None:
            self._runtime.DLA_core = int(self.built["dla_core"])
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineError(f"TensorRT could not deserialize {path}: {REBUILD}")
        return engine

    def _bind(self, inp: TensorSpec, outputs: list[TensorSpec]) -> dict[str, Buffer]:
        """One buffer per I/O tensor, allocated once and bound to the context."""
        buffers = {}
        for spec in [inp, *outputs]:
            shape = (self.max_batch, *self.input_shape[1:]) if spec.is_input else concrete_shape(
                spec.name, tuple(self.context.get_tensor_shape(spec.name)), str(self.path))
            buffers[spec.name] = self.cuda.alloc(shape, spec.dtype)
            checked(self.context.set_tensor_address(spec.name, buffers[spec.name].ptr),
                    f"set_tensor_address({spec.name!r})", str(self.path))
        return buffers

    @property
    def precision(self) -> str:
        return str(self.built.get("precision", "?"))

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        """Run one (N, 3, H, W) (or (N, H, W, 3)) float32 batch, N up to ``max_batch``;
        returns copies of the asked outputs (N frames each)."""
        self.cuda.activate()  # the calling worker thread's current device = the engine's
        inp, n = self._buf[self.input_name], len(batch)
        if n != self._batch:
            checked(self.context.set_input_shape(self.input_name, (n, *self.input_shape[1:])),
                    "set_input_shape", str(self.path))
            self._batch = n
        np.copyto(inp.host[:n], batch, casting="same_kind")
        self.cuda.upload(inp)
        if not self.context.execute_async_v3(self.cuda.stream):
            raise EngineError(f"TensorRT execution of {self.path} failed: see the log above")
        names = outputs or self.output_names
        for name in names:
            self.cuda.download(self._buf[name])
        self.cuda.synchronize()
        # copies: the pinned buffers are overwritten by the next frame
        return {name: self._buf[name].host[:n].copy() for name in names}

    def describe(self) -> str:
        where = f"DLA {self.built['dla_core']} + " if self.built.get("dla_core") is not None \
            else ""
        return (f"tensorrt {self.precision} on {where}{self._gpu.name} cuda:{self._device_index} "
                f"(sm {self._gpu.compute_capability})")
