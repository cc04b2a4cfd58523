"""What the TensorRT backend needs of a CUDA runtime: a :class:`Buffer` per I/O tensor and the
few calls of :class:`CudaRuntime`. Shared by the cuda-python and the torch implementations
(:mod:`seg_ros.engines.tensorrt.cuda_runtime`, :mod:`seg_ros.engines.torch`) without either
importing the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass
class Buffer:
    """One I/O tensor: a pinned host array and its device twin (``ptr``), allocated once."""

    host: np.ndarray
    ptr: int
    handle: Any = None  # the device allocation's owner (a torch tensor) where there is one


class CudaRuntime(Protocol):
    """The few CUDA calls the engine needs: one stream, buffers allocated once, async copies."""

    stream: int  # the cudaStream_t handle as an int, for execute_async_v3

    def activate(self) -> None: ...
    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer: ...
    def upload(self, buf: Buffer) -> None: ...
    def download(self, buf: Buffer) -> None: ...
    def synchronize(self) -> None: ...
