"""What gpu-check can run here: the backends it knows, each with why it cannot run on this
machine (None: it can), and the row each one's results go into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.ros.params import default_model_path
from seg_ros.train.data import default_data_dir

MODEL = default_model_path()  # the shipped CamVid model (package share dir, else the checkout)
CAMVID = default_data_dir()  # $SEG_ROS_CAMVID, else ../shared/datasets/camvid



@dataclass
class Row:
    """One backend's results; ``status`` is pass, FAIL or not available."""

    name: str
    status: str = "not available"
    detail: str = ""
    agreement: float | None = None
    miou: float | None = None
    latency_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # (median, p99)
    node_ms: float | None = None
    open_s: float | None = None


@dataclass(frozen=True)
class Candidate:
    """A backend to check: how to open it, why it cannot run here (None: it can), and the
    node parameters for the end-to-end run (None: not run through a node)."""

    name: str
    backend: str
    device: str
    options: dict[str, Any]
    missing: Callable[[], str | None]
    node_params: dict[str, str] | None = None
    int8: bool = False
    model: Callable[[], Path] | None = None  # the file to open (default: the shipped ONNX)


# --- what this machine has ------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Driver, GPU, packages: printed first so a table can be read against its machine."""
    from seg_ros.engines.auto import ort_providers
    from seg_ros.engines.gpu import (
        cuda_device_count,
        cuda_runtime_facts,
        current_gpu,
        driver_cuda_version,
        package_version,
    )
    from seg_ros.engines.onnxruntime import onnxruntime_distributions, shadowing_hint

    gpus = cuda_device_count()
    facts = cuda_runtime_facts(probe_torch=gpus > 0)
    driver = driver_cuda_version()
    return {"gpus": gpus, "gpu": asdict(g) if (g := current_gpu(0)) else None,
            "driver_cuda": f"{driver // 1000}.{driver % 1000 // 10}" if driver else None,
            "tensorrt": package_version("tensorrt"), "cuda_python": facts.cuda_python,
            "torch_cuda": facts.torch_cuda, "onnxruntime": onnxruntime_distributions(),
            "ort_providers": ort_providers(), "ort_shadowing": shadowing_hint()}


def _ort_missing(provider: str, env: dict[str, Any]) -> Callable[[], str | None]:
    def missing() -> str | None:
        if not env["gpus"]:
            return "no CUDA GPU"
        if provider not in env["ort_providers"]:
            return env["ort_shadowing"] or f"this onnxruntime has no {provider} " \
                "(pip install onnxruntime-gpu)"
        return None
    return missing


def _trt_missing(buffers: str = "auto") -> Callable[[], str | None]:
    def missing() -> str | None:
        from seg_ros.engines.gpu import (
            CudaRuntimeFacts,
            cuda_device_count,
            cuda_runtime_facts,
            tensorrt_problems,
        )

        facts = cuda_runtime_facts(probe_torch=cuda_device_count() > 0)  # torch: only if useful
        if buffers == "torch":
            facts = CudaRuntimeFacts(None, facts.torch_cuda)
        elif buffers == "cuda-python":
            facts = CudaRuntimeFacts(facts.cuda_python, None)
        problems = tensorrt_problems(0, facts)
        return "missing " + " and ".join(problems) if problems else None
    return missing


def _torch_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "no torch"
    from seg_ros.engines.torch import torch_cuda_version

    if torch_cuda_version() is None:
        return "torch has no CUDA (a CPU build, or no GPU / driver)"
    return None


def _torch_model() -> Path:
    """TorchScript of the shipped model (seg_ros/train/torch_program.py), made once."""
    from seg_ros.engines.tensorrt.cache import DEFAULT_CACHE_DIR
    from seg_ros.train.torch_program import torch_program

    return torch_program(MODEL, Path(DEFAULT_CACHE_DIR).expanduser().parent / "camvid.pt")


def candidates(env: dict[str, Any], calib: Path) -> list[Candidate]:
    from seg_ros.engines.tensorrt.cache import DEFAULT_CACHE_DIR

    cache = str(Path(DEFAULT_CACHE_DIR).expanduser())
    trt = {"engine_cache_dir": cache}
    return [
        Candidate("onnxruntime CUDA", "onnxruntime", "cuda", {},
                  _ort_missing("CUDAExecutionProvider", env),
                  {"backend": "onnxruntime", "device": "cuda"}),
        Candidate("onnxruntime TensorRT EP fp16", "onnxruntime", "tensorrt",
                  {"precision": "fp16", "trt_cache_dir": cache},
                  _ort_missing("TensorrtExecutionProvider", env)),
        Candidate("tensorrt fp32", "tensorrt", "cuda", {**trt, "precision": "fp32"},
                  _trt_missing()),
        Candidate("tensorrt fp16", "tensorrt", "cuda", {**trt, "precision": "fp16"},
                  _trt_missing(), {"backend": "tensorrt", "device": "cuda"}),
        Candidate("tensorrt fp16, cuda-python buffers", "tensorrt", "cuda",
                  {**trt, "precision": "fp16", "cuda_buffers": "cuda-python"},
                  _trt_missing("cuda-python")),
        Candidate("tensorrt fp16, torch CUDA buffers", "tensorrt", "cuda",
                  {**trt, "precision": "fp16", "cuda_buffers": "torch"}, _trt_missing("torch")),
        Candidate("tensorrt int8 (calibrated on CamVid train)", "tensorrt", "cuda",
                  {**trt, "precision": "int8", "calib_data": str(calib)},
                  _trt_missing(), int8=True),
        Candidate("tensorrt int8 (Q/DQ models/camvid.trt-int8.onnx)", "tensorrt", "cuda",
                  {**trt, "precision": "int8"}, _trt_missing(), int8=True,
                  model=lambda: MODEL.with_name("camvid.trt-int8.onnx")),
        Candidate("torch CUDA (TorchScript of the same model)", "torch", "cuda", {},
                  _torch_missing, model=_torch_model),
        Candidate("auto (the node's defaults)", "auto", "cpu", {},
                  lambda: None if env["gpus"] else "no CUDA GPU", {}),
    ]

