"""What this machine offers the GPU backends, asked cheaply and without importing them.

The CUDA driver is queried through ``libcuda`` with ctypes (no torch, no tensorrt import), the
packages through ``importlib`` metadata. :func:`tensorrt_problems` lists every piece the
TensorRT backend lacks here -- the tensorrt package, a CUDA GPU, a CUDA runtime for buffers
(cuda-python or a CUDA build of torch) and a driver new enough for that runtime -- so ``auto``
can fall back with a reason instead of failing on the first frame.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache

from seg_ros.errors import EngineError

# cuDeviceGetAttribute ids of the compute capability (CUdevice_attribute in cuda.h)
_CC_MAJOR, _CC_MINOR = 75, 76


@dataclass(frozen=True)
class GpuInfo:
    """A CUDA device as TensorRT engines care about it: model name + compute capability."""

    name: str
    compute_capability: str  # "8.7"


@lru_cache(maxsize=1)
def _libcuda() -> ctypes.CDLL | None:
    """The driver library, initialised; None without a driver."""
    for lib in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        return cuda if cuda.cuInit(0) == 0 else None
    return None


def cuda_device_count() -> int:
    """Number of CUDA devices the driver sees (0 without a driver)."""
    cuda = _libcuda()
    count = ctypes.c_int(0)
    if cuda is None or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def driver_cuda_version() -> int:
    """Newest CUDA version the driver supports, as 1000 * major + 10 * minor (12060 for
    12.6); 0 without a driver."""
    cuda = _libcuda()
    version = ctypes.c_int(0)
    if cuda is None or cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return 0
    return version.value


def current_gpu(index: int = 0) -> GpuInfo | None:
    """Name and compute capability of CUDA device ``index``; None when there is none."""
    cuda = _libcuda()
    if cuda is None or cuda_device_count() <= index:
        return None
    dev = ctypes.c_int(0)
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    if (cuda.cuDeviceGet(ctypes.byref(dev), index) != 0
            or cuda.cuDeviceGetName(name, 256, dev) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev) != 0):
        return None
    return GpuInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")


def package_version(dist: str) -> str | None:
    """Installed version of distribution ``dist`` (e.g. 'cuda-python'), None when absent."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorrt_version() -> str | None:
    """Version of the importable tensorrt package, None when it is not installed."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt as trt

    return str(trt.__version__)


@dataclass(frozen=True)
class CudaRuntimeFacts:
    """Which CUDA runtimes for host/device buffers exist, and the CUDA major each needs."""

    cuda_python: str | None  # cuda-python / cuda-bindings version, e.g. "12.6.2"
    torch_cuda: str | None  # torch.version.cuda of a CUDA torch build, e.g. "12.4"


def cuda_runtime_facts(probe_torch: bool = True) -> CudaRuntimeFacts:
    """cuda-python's version (metadata only) and, when asked, the CUDA version torch was built
    for (that imports torch: :func:`seg_ros.engines.torch.torch_cuda_version`)."""
    cp = package_version("cuda-bindings") or package_version("cuda-python")
    if cp is not None and importlib.util.find_spec("cuda") is None:
        cp = None
    torch_cuda = None
    if probe_torch and importlib.util.find_spec("torch") is not None:
        from seg_ros.engines.torch import torch_cuda_version

        torch_cuda = torch_cuda_version()
    return CudaRuntimeFacts(cp, torch_cuda)


def runtime_problem(facts: CudaRuntimeFacts, driver: int) -> str | None:
    """Why no CUDA runtime can make buffers here, None when one can. A runtime built for CUDA
    major M needs a driver supporting M.x (minor-version compatibility); ``driver`` as
    :func:`driver_cuda_version` gives it."""
    usable, needs = [], []
    for what, version in (("cuda-python", facts.cuda_python), ("torch", facts.torch_cuda)):
        if version is None:
            continue
        major = int(version.split(".")[0])
        if driver >= major * 1000:
            usable.append(what)
        else:
            needs.append(f"{what} {version} needs a driver for CUDA {major}.x")
    if usable:
        return None
    if not needs:
        return "a CUDA runtime for buffers (pip install cuda-python, or a CUDA build of torch)"
    have = f"{driver // 1000}.{driver % 1000 // 10}" if driver else "none"
    return (f"a driver new enough ({'; '.join(needs)}; the driver supports {have}): "
            "upgrade the driver or install a cuda-python matching it")


def tensorrt_problems(device_index: int = 0, facts: CudaRuntimeFacts | None = None,
                      trt_installed: bool | None = None, gpus: int | None = None,
                      driver: int | None = None) -> list[str]:
    """Every missing piece for the TensorRT backend on CUDA device ``device_index``; [] when
    it can run. The keyword arguments replace the probes of this machine (for tests)."""
    if trt_installed is None:
        trt_installed = importlib.util.find_spec("tensorrt") is not None
    gpus = cuda_device_count() if gpus is None else gpus
    problems = [] if trt_installed else ["the tensorrt Python package"]
    if gpus <= device_index:
        problems.append("a CUDA GPU" if device_index == 0 else f"CUDA GPU {device_index}")
        return problems  # no GPU: the runtime question does not arise
    if facts is None:
        facts = cuda_runtime_facts()
    runtime = runtime_problem(facts, driver_cuda_version() if driver is None else driver)
    return [*problems, runtime] if runtime else problems


@lru_cache(maxsize=1)
def tensorrt_usable() -> bool:
    """True when the TensorRT backend can run on CUDA device 0 here."""
    return not tensorrt_problems(0)


def unavailable_message(what: str, missing: list[str]) -> str:
    """One line: what cannot run, what is missing, and the fallback."""
    return (f"{what} is not available on this machine (missing {' and '.join(missing)}): "
            "use backend 'onnxruntime' with the .onnx model instead "
            "(or `seg-ros quantize` for int8 on the CPU)")


def parse_device(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1; EngineError for anything else (TensorRT runs on GPUs)."""
    kind, _, index = device.partition(":")
    if kind not in ("cuda", "tensorrt") or (index and not index.isdigit()):
        raise EngineError(f"device {device!r} is not a CUDA device: TensorRT needs 'cuda' or "
                          "'cuda:N'; for the CPU use backend 'onnxruntime'")
    return int(index or 0)
