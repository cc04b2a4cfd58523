"""What a model file without a card looks like from outside: inputs, outputs, and the output
arrays of one run at a given input size. Used by ``seg-ros card`` and ``seg-ros info``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_ros.errors import ConfigError, EngineError


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, shape (ints, or names / None for dynamic dims) and
    element type as the runtime names it."""

    name: str
    shape: tuple
    dtype: str

    def describe(self) -> str:
        dims = ", ".join(str(d) if d is not None else "?" for d in self.shape)
        return f"{self.name} ({dims}) {self.dtype}"


class ModelProbe:
    """A model opened without its card, to list its tensors and run it once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"model file {self.path} does not exist: check the path")
        self.kind = "onnx" if self.path.suffix.lower() == ".onnx" else "torch"
        if self.kind == "onnx":
            self._open_onnx()
        elif self.path.suffix.lower() in (".pt", ".pt2", ".ts"):
            self._open_torch()
        else:
            raise ConfigError(f"{self.path}: cannot inspect a {self.path.suffix} file here; write "
                              "its card from the .onnx it was built from (`seg-ros card`), then "
                              "rebuild it with `seg-ros build-engine`")

    def _open_onnx(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), so,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(e).strip().splitlines()[0][:160]
            raise EngineError(f"{self.path} is not a loadable ONNX model ({first}): re-export "
                              "or re-copy it") from None
        self.inputs = [TensorInfo(i.name, tuple(i.shape), i.type) for i in
                       self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(o.shape), o.type) for o in
                        self.session.get_outputs()]

    def _open_torch(self) -> None:
        from seg_ros.engines.torch import load_program

        self.module = load_program(self.path)
        self.inputs = [TensorInfo("input", (1, 3, None, None), "float32")]
        self.outputs = []  # known only after a run

    def static_size(self) -> tuple[int, int] | None:
        """(H, W) of the image input when the graph fixes it, else None (dynamic)."""
        shape = self.inputs[0].shape
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            return int(shape[2]), int(shape[3])
        return None

    def run(self, size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Outputs by name for one seeded random (1, 3, H, W) batch at ``size``."""
        x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
        if self.kind == "onnx":
            names = [o.name for o in self.outputs]
            return dict(zip(names, self.session.run(names, {self.inputs[0].name: x})))
        from seg_ros.engines.torch import run_program

        return run_program(self.module, x)
