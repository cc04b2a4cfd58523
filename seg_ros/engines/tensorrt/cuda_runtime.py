"""CUDA buffers and a stream for the TensorRT backend: the few runtime calls it needs.

Two implementations of one small :class:`CudaRuntime` protocol: cuda-python's runtime bindings
(``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6), preferred, and torch CUDA tensors
(:class:`seg_ros.engines.torch.TorchCudaRuntime`, only when cuda-python is missing). Buffers
are allocated once per engine; every call made from a thread first selects the engine's device
for that thread (the current CUDA device is per host thread, so a worker thread would
otherwise run on device 0).
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from typing import Any

import numpy as np

from seg_ros.engines.tensorrt.cuda_buffers import Buffer, CudaRuntime
from seg_ros.errors import EngineError


def stream_handle(stream: Any) -> int:
    """The ``cudaStream_t`` value of a cuda-python stream object, as TensorRT's
    ``execute_async_v3(stream_handle)`` wants it. ``int(stream)`` is the handle; ``getPtr()``
    is the address of the wrapper's own storage, which TensorRT would take for a stream."""
    return int(stream)


class CudaPythonRuntime:
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` < 12.6)."""

    def __init__(self, device_index: int = 0) -> None:
        try:
            from cuda.bindings import runtime as rt
        except ImportError:
            from cuda import cudart as rt  # type: ignore[no-redef]
        self.rt = rt
        self.device_index = device_index
        self._threads = threading.local()
        self._owned: list[tuple[str, int]] = []
        self.activate()
        self._stream = self._check(rt.cudaStreamCreate())
        self.stream = stream_handle(self._stream)

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise EngineError(f"CUDA error {err} on device {self.device_index}: check the GPU "
                              "and driver (nvidia-smi)")
        return rest[0] if len(rest) == 1 else rest

    def activate(self) -> None:
        """Select the engine's device for the calling thread (once per thread)."""
        if not getattr(self._threads, "active", False):
            self._check(self.rt.cudaSetDevice(self.device_index))
            self._threads.active = True

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        host_ptr = int(self._check(self.rt.cudaMallocHost(max(1, nbytes))))
        self._owned.append(("host", host_ptr))
        dev_ptr = int(self._check(self.rt.cudaMalloc(max(1, nbytes))))
        self._owned.append(("device", dev_ptr))
        raw = (ctypes.c_ubyte * max(1, nbytes)).from_address(host_ptr)
        host = np.ctypeslib.as_array(raw)[:nbytes]
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
        if hasattr(self, "_stream"):
            self.rt.cudaStreamDestroy(self._stream)


def cuda_runtime(device_index: int = 0, buffers: str = "auto") -> CudaRuntime:
    """cuda-python when importable, else torch CUDA; EngineError naming both when neither is.
    ``buffers``: 'auto', or 'cuda-python' / 'torch' to insist on one (``make gpu-check``
    runs both). The calling thread's current device is ``device_index`` afterwards."""
    if buffers not in ("auto", "cuda-python", "torch"):
        raise EngineError(f"cuda_buffers {buffers!r}: choose auto, cuda-python or torch")
    if buffers != "torch" and importlib.util.find_spec("cuda") is not None:
        try:
            return CudaPythonRuntime(device_index)
        except ImportError:
            pass
    if buffers != "cuda-python" and importlib.util.find_spec("torch") is not None:
        from seg_ros.engines.torch import TorchCudaRuntime, torch_cuda_version

        if torch_cuda_version() is not None:
            return TorchCudaRuntime(device_index)
    wanted = "cuda-python (pip install cuda-python) or a CUDA build of torch" \
        if buffers == "auto" else ("cuda-python (pip install cuda-python)"
                                   if buffers == "cuda-python" else "a CUDA build of torch")
    raise EngineError(f"TensorRT needs CUDA buffers: install {wanted}")
