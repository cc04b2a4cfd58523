"""INT8: onnxruntime static QDQ quantization of a seg_ros ONNX model, for the CPU or TensorRT.

Steps: ``quant_pre_process`` (shape inference + graph optimisation, as onnxruntime advises)
-> ``quantize_static`` in QDQ format with per-channel int8 weights, activation ranges measured on
real frames pre-processed by ``Segmenter.preprocess`` (the same reader the TensorRT calibrator
uses) -> the model card embedded again with the int8 facts in its provenance.

The argmax/softmax tail (and the upsample feeding it) stays float: quantizing the logits right
before argmax flips labels wherever two classes are close, and ``confidence`` must stay a float
probability. Outputs therefore keep the export contract: ``labels`` uint8, ``confidence`` float32.

Targets (:data:`TARGETS`): ``cpu`` quantizes activations to uint8 with asymmetric ranges (what
onnxruntime's CPU kernels are fastest with); ``tensorrt`` to signed int8 with symmetric ranges
(zero points 0) for weights and activations, the only explicit quantization TensorRT takes --
TensorRT 10.1+ and the strongly typed 11.x build it from its own scales, without calibrators.
It lives with the engines because a strongly typed int8 TensorRT build from a float model runs
it (:func:`seg_ros.engines.tensorrt.build.qdq_graph`); ``seg-ros quantize`` writes its file.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.engines.calibration import CalibrationBatches, list_frames
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import ModelCard, embed_in_onnx, file_sha256, read_card

# Ops that turn logits into labels/confidence; kept float together with everything after them.
TAIL_OPS = {"ArgMax", "Softmax", "LogSoftmax", "ReduceMax", "TopK"}
# Layout/resampling ops allowed between the last conv and the tail (also kept float).
PASS_THROUGH_OPS = {"Resize", "Upsample", "Transpose", "Reshape", "Identity", "Cast"}
METHODS = ("minmax", "entropy", "percentile")
# target -> (activation type name, symmetric activations); weights are int8 symmetric for both
TARGETS = {"cpu": ("QUInt8", False), "tensorrt": ("QInt8", True)}
# target -> leading convolutions kept float by default. Symmetric int8 halves the resolution of
# the non-negative (ReLU6) activations, and the full-resolution stem is where that costs labels:
# CamVid val mIoU of the shipped model (onnxruntime CPU): fp32 75.64, tensorrt int8 with the
# first 0 / 3 / 9 convs float 73.86 / 74.92 / 75.64
FLOAT_CONVS = {"cpu": 0, "tensorrt": 3}
# target -> onnxruntime quantize_static extra options beyond the symmetry flags. TensorRT:
# Q/DQ only at the inputs of Conv / Add (NVIDIA's placement: it fuses the activation and
# quantizes the output at the next layer's input), ranges as a moving average over frames
TARGET_OPTIONS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "tensorrt": {"CalibMovingAverage": True,
                 "OpTypesToExcludeOutputQuantization": ["Conv", "Add"]},
}


@dataclass
class QuantizeReport:
    """What ``quantize_onnx`` did: sizes in bytes, time in seconds."""

    out: Path
    frames: int
    excluded_nodes: list[str]
    fp32_bytes: int
    int8_bytes: int
    seconds: float


class FrameReader:
    """onnxruntime ``CalibrationDataReader`` over :class:`CalibrationBatches` (batch 1)."""

    def __init__(self, batches: CalibrationBatches, input_name: str) -> None:
        self.batches = batches
        self.input_name = input_name
        self._it: Iterator[np.ndarray] | None = None
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(self.batches)
        batch = next(self._it, None)
        if batch is None:
            return None
        self.count += 1
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._it = None
        self.count = 0


def float_tail_nodes(model: object) -> list[str]:
    """Names of the nodes to keep float: the argmax/softmax tail, the resample/layout ops
    feeding it, and everything downstream of those (Cast to uint8, ...)."""
    graph = model.graph  # type: ignore[attr-defined]
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    keep: dict[str, object] = {}
    stack = [n for n in graph.node if n.op_type in TAIL_OPS]
    # backwards through pass-through ops to the tensor the network computes (the logits)
    back = list(stack)
    while back:
        n = back.pop()
        for i in n.input:
            p = producer.get(i)
            if p is not None and p.op_type in PASS_THROUGH_OPS and p.name not in keep:
                keep[p.name] = p
                back.append(p)
    # forwards: everything downstream of the tail
    seen: set[str] = set()
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        keep[n.name] = n
        for out in n.output:
            stack.extend(consumers.get(out, []))
    return sorted(keep)


def stem_nodes(model: object, convs: int) -> list[str]:
    """Names of the nodes up to and including the ``convs``-th Conv (graph order is
    topological): the stem kept float; [] for 0."""
    if convs <= 0:
        return []
    names, seen = [], 0
    for n in model.graph.node:  # type: ignore[attr-defined]
        if n.op_type == "Conv":
            if seen == convs:
                break
            seen += 1
        names.append(n.name)
    return names


def name_nodes(model: object) -> None:
    """Give unnamed nodes a unique name: nodes_to_exclude works by name."""
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):  # type: ignore[attr-defined]
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def _float_card(model: Path, out: Path, method: str) -> ModelCard:
    """The card of the float ONNX ``model``, after checking what the arguments ask for."""
    if model.suffix != ".onnx" or not model.is_file():
        raise ConfigError(f"{model} is not an .onnx file: quantize the exported ONNX model")
    if out.resolve() == model.resolve():
        raise ConfigError(f"--out {out} would overwrite the float model: pick another name")
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    card = read_card(model)
    if card.provenance.get("precision") == "int8":
        raise ConfigError(f"{model} is already int8: quantize the float model instead")
    return card


def _quantize_static(pre: Path, out: Path, reader: Any, excluded: list[str], method: str,
                     per_channel: bool, name: str, target: str = "cpu") -> None:
    """onnxruntime's static QDQ quantization: int8 weights (symmetric, per channel when
    asked), activations as ``target`` wants them (:data:`TARGETS`), ``excluded`` nodes kept
    float."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    try:
        quantize_static(
            str(pre), str(out), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=getattr(QuantType, TARGETS[target][0]),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method={"minmax": CalibrationMethod.MinMax,
                              "entropy": CalibrationMethod.Entropy,
                              "percentile": CalibrationMethod.Percentile}[method],
            extra_options={"ActivationSymmetric": TARGETS[target][1], "WeightSymmetric": True,
                           **TARGET_OPTIONS[target]},
        )
    except Exception as e:  # onnxruntime raises plain exceptions from deep inside
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EngineError(
            f"onnxruntime could not quantize {name} ({first}): check that it is a "
            "seg-ros exported model and onnxruntime is >= 1.18"
        ) from None


def quantize_onnx(
    model: str | Path,
    calib_data: str | Path,
    out: str | Path,
    calib_frames: int = 100,
    method: str = "minmax",
    per_channel: bool = True,
    log: Callable[[str], None] = lambda s: None,
    target: str = "cpu",
    float_convs: int | None = None,
) -> QuantizeReport:
    """Write an int8 QDQ copy of ``model`` to ``out``, calibrated on ``calib_frames`` frames of
    ``calib_data`` (use a training split, never the split you evaluate on), for ``target``
    ('cpu' or 'tensorrt', :data:`TARGETS`), the first ``float_convs`` convolutions kept float
    (default :data:`FLOAT_CONVS` of the target)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model, out = Path(model), Path(out)
    if target not in TARGETS:
        raise ConfigError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    card = _float_card(model, out, method)
    frames = list_frames(calib_data, calib_frames)
    batches = CalibrationBatches(frames, card, batch_size=1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seg_ros_quant_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        log(f"pre-processing {model.name} (shape inference, optimisation)")
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=False)
        proto = onnx.load(str(pre))
        name_nodes(proto)
        onnx.save(proto, str(pre))
        stem = stem_nodes(proto, FLOAT_CONVS[target] if float_convs is None else float_convs)
        excluded = sorted({*stem, *float_tail_nodes(proto)})
        input_name = proto.graph.input[0].name
        log(f"calibrating on {len(batches)} frames from {Path(calib_data)} for {target} "
            f"({method}, per-channel weights); kept float: {', '.join(excluded) or 'none'}")
        reader = FrameReader(batches, input_name)
        q_tmp = Path(tmp) / "q.onnx"
        _quantize_static(pre, q_tmp, reader, excluded, method, per_channel, model.name, target)
        qmodel = onnx.load(str(q_tmp))
    provenance = card.with_provenance(
        precision="int8",
        quantization={
            "tool": "onnxruntime.quantization.quantize_static",
            "format": "QDQ", "weights": "int8 per-channel" if per_channel else "int8",
            "activations": "int8 symmetric" if TARGETS[target][1] else "uint8",
            "target": target, "method": method, "float_stem_nodes": len(stem),
            "calibration_frames": len(batches),
            "calibration_data": Path(calib_data).resolve().name,
            "float_nodes": excluded,
            "source_sha256": file_sha256(model),
        },
    )
    embed_in_onnx(provenance, qmodel)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    onnx.save(qmodel, str(part))
    part.replace(out)
    report = QuantizeReport(out, len(batches), excluded, model.stat().st_size,
                            out.stat().st_size, time.perf_counter() - t0)
    log(f"wrote {out} ({report.int8_bytes / 1e6:.2f} MB, float {report.fp32_bytes / 1e6:.2f} MB)"
        f" in {report.seconds:.1f} s")
    return report
