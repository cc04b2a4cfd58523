"""The stand-in TensorRT (fake_tensorrt) installed for a test, with host memory in place of CUDA
buffers and a made-up GPU: what the ``fake_trt`` fixture (conftest.py) sets up for the TensorRT
flow tests (gpu/) and the foreign-layout tests (unit/) alike."""

from __future__ import annotations

import sys
from typing import Any

import fake_tensorrt
import numpy as np
import pytest

import seg_ros.engines.tensorrt.build as trt_build
import seg_ros.engines.tensorrt.engine as trt_engine
from seg_ros.engines.gpu import GpuInfo
from seg_ros.engines.tensorrt.cuda_buffers import Buffer

GPU = GpuInfo("Fake GPU", "8.7")


class HostCuda:
    """Host arrays in place of device buffers (no GPU here); the device index it selects is
    written where the stand-in Builder reads the 'current device'."""

    stream = 0x51

    def __init__(self, index: int = 0, buffers: str = "auto") -> None:
        self.index = index
        self.activate()

    def activate(self) -> None:
        fake_tensorrt.RECORD["current_device"] = self.index

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        host = np.zeros(shape, dtype)
        return Buffer(host, host.ctypes.data, host)

    def upload(self, buf: Buffer) -> None:
        pass

    def download(self, buf: Buffer) -> None:
        pass

    def synchronize(self) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``tensorrt`` is the stand-in (TensorRT 10.3, no DLA) on GPU :data:`GPU` with
    :class:`HostCuda`, until the test ends; the stand-in's record of what it was asked."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    fake_tensorrt.RECORD.clear()
    monkeypatch.setattr(fake_tensorrt, "DLA_CORES", 0)
    for module in (trt_engine, trt_build):
        monkeypatch.setattr(module, "tensorrt_problems", lambda index=0: [])
        monkeypatch.setattr(module, "current_gpu", lambda index=0: GPU)
        monkeypatch.setattr(module, "cuda_runtime", HostCuda)
    return fake_tensorrt.RECORD
