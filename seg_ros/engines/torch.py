"""PyTorch backend: TorchScript (.pt/.ts) or torch.export programs (.pt2), CPU or CUDA.

Neither format unpickles arbitrary Python objects: TorchScript archives hold TorchScript code
and tensors, and .pt2 files are loaded by ``torch.export.load``. The card comes from the JSON
sidecar (``model.pt`` -> ``model.pt.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.engines.outputs import OutputSpec, check_card_outputs
from seg_ros.engines.tensorrt.cuda_buffers import Buffer
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, read_sidecar


class TorchEngine:
    backend = "torch"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0, **_: object) -> None:
        import torch

        self._torch = torch
        self.card: ModelCard = read_sidecar(path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"device {device!r} asked for but torch sees no CUDA GPU: use cpu")
        if device not in ("cpu",) and not device.startswith("cuda"):
            raise EngineError(f"unknown device {device!r} for torch: use cpu, cuda or cuda:N")
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.module = load_program(path, self.device)
        self.input_shape = self.card.input_shape()  # (1, 3, H, W) or channels-last
        # positional outputs take the card's names: the card's output, then ``confidence``
        self.output_names = [self.card.output, "confidence"]
        check_card_outputs(self.card, self._output_specs(), str(path))

    def _output_specs(self) -> list[OutputSpec]:
        """Names, dtypes and shapes of the outputs, from one run on a zero batch."""
        outputs = self.infer(np.zeros(self.input_shape, np.float32))
        return [OutputSpec(n, tuple(v.shape), v.dtype.kind) for n, v in outputs.items()]

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        return run_program(self.module, batch, self.output_names, self.device)

    def describe(self) -> str:
        return f"torch {self._torch.__version__} ({self.device})"


def load_program(path: Path, device: Any = "cpu") -> Any:
    """A TorchScript (.pt/.ts) or torch.export (.pt2) program on ``device``, in eval mode;
    EngineError naming the fix when the file does not load."""
    import torch

    try:
        if path.suffix.lower() == ".pt2":
            module = torch.export.load(str(path)).module()
        else:
            module = torch.jit.load(str(path), map_location=torch.device(device)).eval()
    except Exception as e:
        raise EngineError(
            f"{path} is not a loadable TorchScript / torch.export program "
            f"({type(e).__name__}): re-export it, or use the .onnx model"
        ) from None
    return module.to(torch.device(device))


def run_program(module: Any, batch: np.ndarray, names: list[str] | None = None,
                device: Any = "cpu") -> dict[str, np.ndarray]:
    """One run of a loaded program on ``batch``: a dict result's tensors by key (e.g.
    {"logits": ...} from Hugging Face style modules), else the positional tensors under
    ``names`` (default "output", "confidence" for up to two, else "output0", "output1", ...)."""
    import torch

    with torch.inference_mode():
        result = module(torch.from_numpy(batch).to(device))
    if isinstance(result, torch.Tensor):
        result = (result,)
    if isinstance(result, dict):
        return {str(n): t.cpu().numpy() for n, t in result.items()
                if isinstance(t, torch.Tensor)}
    if names is None:
        names = (["output", "confidence"] if len(result) <= 2
                 else [f"output{i}" for i in range(len(result))])
    return {n: t.cpu().numpy() for n, t in zip(names, result)}


# --- CUDA buffers for the TensorRT backend where cuda-python is missing ----------------------


def torch_cuda_version() -> str | None:
    """CUDA version this torch was built for ("12.4"); None for a CPU-only build."""
    import torch

    return torch.version.cuda


class TorchCudaRuntime:
    """:class:`seg_ros.engines.tensorrt.cuda_buffers.CudaRuntime` on torch CUDA tensors: pinned host
    tensors, device twins and one stream, for the TensorRT backend (torch stays in this file)."""

    def __init__(self, device_index: int = 0) -> None:
        import threading

        import torch

        self.torch = torch
        self.dev = torch.device("cuda", device_index)
        self._threads = threading.local()
        self.activate()
        self._stream = torch.cuda.Stream(self.dev)
        self.stream = int(self._stream.cuda_stream)

    def activate(self) -> None:
        """Select the engine's device for the calling thread (once per thread)."""
        if not getattr(self._threads, "active", False):
            self.torch.cuda.set_device(self.dev)
            self._threads.active = True

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        host_t = self.torch.from_numpy(np.zeros(shape, dtype)).pin_memory()
        dev_t = self.torch.empty_like(host_t, device=self.dev)
        return Buffer(host_t.numpy(), int(dev_t.data_ptr()), (host_t, dev_t))

    def upload(self, buf: Buffer) -> None:
        host_t, dev_t = buf.handle
        with self.torch.cuda.stream(self._stream):
            dev_t.copy_(host_t, non_blocking=True)

    def download(self, buf: Buffer) -> None:
        host_t, dev_t = buf.handle
        with self.torch.cuda.stream(self._stream):
            host_t.copy_(dev_t, non_blocking=True)

    def synchronize(self) -> None:
        self._stream.synchronize()
