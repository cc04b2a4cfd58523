"""TensorRT 10 backend (named-tensor API). Not available on machines without a CUDA GPU."""

from __future__ import annotations

from pathlib import Path

from seg_ros.engines.tensorrt_support import cuda_device_count
from seg_ros.errors import EngineError


def TensorRTEngine(path: Path, device: str = "cuda", threads: int = 0, **options: object):
    import importlib.util

    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt Python package")
    if cuda_device_count() == 0:
        missing.append("a CUDA GPU")
    raise EngineError(
        "TensorRT backend is not available on this machine "
        f"(missing {' and '.join(missing) or 'support'}): "
        "use backend 'onnxruntime' with the .onnx model instead"
    )
