"""Cheap checks for TensorRT availability, importable without TensorRT installed."""

from __future__ import annotations

import importlib.util
from functools import lru_cache


@lru_cache(maxsize=1)
def tensorrt_usable() -> bool:
    """True when the tensorrt package imports and a CUDA GPU is visible."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    """Number of CUDA devices, asked of the driver (no torch import)."""
    import ctypes

    for lib in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0
