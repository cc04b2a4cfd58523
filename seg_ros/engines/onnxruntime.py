"""ONNX Runtime backend: CPU, or the CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_ros.engines.outputs import OutputSpec, check_card_outputs, ort_kind
from seg_ros.errors import EngineError
from seg_ros.model_card import (
    METADATA_KEY,
    ModelCard,
    card_from_onnx_metadata,
    read_sidecar,
    sidecar_path,
)

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
        self.card: ModelCard = session_card(self.session, path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = engine_input_shape(inp.shape, self.card, path)
        self.output_names = [o.name for o in self.session.get_outputs()]
        check_card_outputs(self.card, self._output_specs(), str(path))
        self.providers = self.session.get_providers()
        self._device = device

    def _output_specs(self) -> list[OutputSpec]:
        """Output names, dtypes and shapes; dynamic shapes are measured by running the graph
        once on a zero batch (which also warms it up)."""
        outs = self.session.get_outputs()
        shapes = [tuple(d if isinstance(d, int) else None for d in o.shape) for o in outs]
        if any(None in s for s in shapes):
            values = self.session.run(None, {self.input_name: np.zeros(self.input_shape,
                                                                       np.float32)})
            shapes = [tuple(v.shape) for v in values]
        return [OutputSpec(o.name, s, ort_kind(o.type)) for o, s in zip(outs, shapes)]

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        values = self.session.run(names, {self.input_name: batch})
        return dict(zip(names, values))

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]} ({self._device})"


def session_card(session: object, path: Path) -> ModelCard:
    """The card in the model's metadata (read through onnxruntime: no ``onnx`` package at run
    time), else the JSON sidecar next to the file."""
    meta = session.get_modelmeta().custom_metadata_map  # type: ignore[attr-defined]
    if sidecar_path(path).is_file() and METADATA_KEY not in meta:
        return read_sidecar(path)
    return card_from_onnx_metadata(meta, str(path))


def engine_input_shape(graph_shape: list, card: ModelCard, path: Path
                       ) -> tuple[int, int, int, int]:
    """(1, 3, H, W) the engine runs: the graph's static size, or the card's input_size for the
    dynamic dimensions. A static size that disagrees with the card is refused."""
    if len(graph_shape) != 4 or (isinstance(graph_shape[1], int) and graph_shape[1] != 3):
        raise EngineError(f"{path}: graph input {graph_shape} is not (N, 3, H, W): seg_ros "
                          "runs RGB/BGR NCHW models; re-export it with an NCHW image input")
    h, w = card.input_size
    for graph_dim, card_dim, what in ((graph_shape[2], h, "height"), (graph_shape[3], w, "width")):
        if isinstance(graph_dim, int) and graph_dim != card_dim:
            raise EngineError(
                f"{path}: graph input {what} is {graph_dim} but the card says {card_dim}: fix "
                f"it with `seg-ros card {path} --input-size {graph_shape[2]}x{graph_shape[3]}`")
    return (1, 3, h, w)
