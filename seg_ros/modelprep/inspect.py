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
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a directory: give the model file in it (.onnx, "
                              ".pt or .pt2)")
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
        so.log_severity_level = 4  # fatal only: a failed probe run is reported in one line
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
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

    def input_layout(self) -> str:
        """'nhwc' when the image input has its 3-channel axis last (TensorFlow / Keras / TFLite
        converted by tf2onnx without --inputs-as-nchw), else 'nchw'."""
        shape = self.inputs[0].shape
        if len(shape) == 4 and shape[3] == 3 and shape[1] != 3:
            return "nhwc"
        return "nchw"

    def channel_axis_fixed(self, layout: str) -> int | None:
        """The graph's channel count on ``layout``'s channel axis (None when dynamic)."""
        shape = self.inputs[0].shape
        if len(shape) != 4:
            return None
        c = shape[3] if layout == "nhwc" else shape[1]
        return int(c) if isinstance(c, int) else None

    def static_size(self, layout: str = "nchw") -> tuple[int, int] | None:
        """(H, W) of the image input when the graph fixes it, else None (dynamic)."""
        shape = self.inputs[0].shape
        hw = shape[1:3] if layout == "nhwc" else shape[2:]
        if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in hw):
            return int(hw[0]), int(hw[1])
        return None

    def output_floor_bytes(self, size: tuple[int, int], layout: str = "nchw") -> int:
        """A lower bound of the bytes one run's outputs take at ``size`` (float32), from the
        output shapes onnx's shape inference gives for that input (the graph's declared ones
        where it cannot): dimensions left open count as 1, so nothing is overestimated."""
        total = 0
        for shape in self._shapes_at(size, layout):
            total += 4 * int(np.prod([d if isinstance(d, int) and d > 0 else 1 for d in shape],
                                     dtype=np.float64))
        return total

    def _shapes_at(self, size: tuple[int, int], layout: str) -> list[tuple]:
        declared = [o.shape for o in self.outputs]
        if self.kind != "onnx" or all(all(isinstance(d, int) for d in s) for s in declared):
            return declared
        try:  # offline tools only: the node never needs the onnx package
            import onnx

            proto = onnx.load(str(self.path), load_external_data=False)
            dims = proto.graph.input[0].type.tensor_type.shape.dim
            for d, v in zip(dims, (1, *size, 3) if layout == "nhwc" else (1, 3, *size)):
                d.dim_value = v
            inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
            shapes = [tuple(d.dim_value if d.HasField("dim_value") else None
                            for d in o.type.tensor_type.shape.dim) for o in inferred.graph.output]
        except Exception:  # any failure: the declared shapes are the bound
            return declared
        return shapes if len(shapes) == len(declared) else declared

    def run(self, size: tuple[int, int], layout: str = "nchw") -> dict[str, np.ndarray]:
        """Outputs by name for one seeded random batch at ``size``, (1, 3, H, W) or, for
        ``layout`` 'nhwc', (1, H, W, 3)."""
        shape = (1, *size, 3) if layout == "nhwc" else (1, 3, *size)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        if self.kind == "onnx":
            names = [o.name for o in self.outputs]
            return dict(zip(names, self.session.run(names, {self.inputs[0].name: x},
                                                    self._run_options)))
        from seg_ros.engines.torch import run_program

        return run_program(self.module, x)
