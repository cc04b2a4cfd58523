"""ONNX Runtime backend: CPU, or the CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_ros.engines import check_outputs
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, card_from_onnx_metadata, read_sidecar, sidecar_path

# device -> execution providers, most preferred first (CPU always last as the fallback)
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def providers_for(device: str, available: list[str], trt_cache_dir: str | None = None) -> list:
    """Execution providers for ``device`` ('cpu', 'cuda', 'cuda:N', 'tensorrt'), checked
    against what this onnxruntime build offers."""
    kind, _, index = device.partition(":")
    if kind not in DEVICE_PROVIDERS:
        raise EngineError(
            f"unknown device {device!r} for onnxruntime: use cpu, cuda, cuda:N or tensorrt"
        )
    wanted = DEVICE_PROVIDERS[kind]
    if wanted[0] not in available:
        raise EngineError(
            f"onnxruntime here has no {wanted[0]} (available: {', '.join(available)}): install "
            "onnxruntime-gpu with matching CUDA/TensorRT, or use device 'cpu'"
        )
    out: list = []
    for p in wanted:
        opts: dict[str, str] = {}
        if p != "CPUExecutionProvider" and index:
            opts["device_id"] = index
        if p == "TensorrtExecutionProvider" and trt_cache_dir:
            opts.update(trt_engine_cache_enable="True", trt_engine_cache_path=trt_cache_dir,
                        trt_timing_cache_enable="True", trt_timing_cache_path=trt_cache_dir)
        out.append((p, opts) if opts else p)
    return out


class OnnxRuntimeEngine:
    """An onnxruntime InferenceSession with the model card the file carries."""

    backend = "onnxruntime"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0,
                 trt_cache_dir: str | None = None, spin: bool = False, **_: object) -> None:
        """``spin``: let idle intra-op threads busy-wait for work (ORT's default). Off here: in
        the node the spinning threads compete with its own threads (render, publish, DDS) and
        other processes. Measured on 2 shared cores, threads=2, two nodes interleaved under a
        4x flood: spinning off 35.8 vs 30.2 frames/s out, p99 57 vs 69 ms. Back-to-back
        inference alone on an idle machine is faster with spinning (bench_model
        ``no_spinning_speedup_quiet`` ~0.8); ``spin=True`` restores it."""
        import onnxruntime as ort

        self.path = Path(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        providers = providers_for(device, ort.get_available_providers(), trt_cache_dir)
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(e).strip().splitlines()[0][:200]
            raise EngineError(
                f"{path} is not a loadable ONNX model ({first}): re-export it with "
                "`seg-ros export` or re-copy the file"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if sidecar_path(path).is_file() and "seg_ros.model_card" not in meta:
            self.card: ModelCard = read_sidecar(path)
        else:
            self.card = card_from_onnx_metadata(meta, str(path))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if any(not isinstance(d, int) for d in inp.shape) or len(inp.shape) != 4:
            shape = (1, 3, *self.card.input_size)
        else:
            shape = tuple(inp.shape)
        self.input_shape: tuple[int, int, int, int] = shape  # type: ignore[assignment]
        if tuple(shape[2:]) != tuple(self.card.input_size):
            raise EngineError(
                f"{path}: graph input is {shape[2]}x{shape[3]} but the card says "
                f"{self.card.input_size[0]}x{self.card.input_size[1]}: fix the card's input_size"
            )
        self.output_names = [o.name for o in self.session.get_outputs()]
        needed = {"labels"} if self.card.output_kind == "labels" else {"logits"}
        if not needed <= set(self.output_names):
            raise EngineError(
                f"{path}: card says output_kind={self.card.output_kind!r} but the graph outputs "
                f"{self.output_names}: expected an output named {sorted(needed)[0]!r}"
            )
        check_outputs(self.card, graph_num_classes(path, self.card.output_kind), str(path))
        self.providers = self.session.get_providers()
        self._device = device

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        values = self.session.run(names, {self.input_name: batch})
        return dict(zip(names, values))

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]} ({self._device})"


def graph_num_classes(path: Path, output_kind: str) -> int | None:
    """Class count the graph computes: the channel dim of the logits, or of the tensor the
    in-graph argmax reduces. None when shapes are not static."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    shapes = {}
    for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if output_kind == "logits":
        dims = shapes.get("logits")
        return dims[1] if dims and len(dims) == 4 else None
    for node in model.graph.node:
        if node.op_type in ("ArgMax", "Softmax", "ReduceMax"):
            dims = shapes.get(node.input[0])
            if dims and len(dims) == 4 and dims[1]:
                return dims[1]
    return None
