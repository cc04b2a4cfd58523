"""The ONNX that TensorRT's parser gets, and what the builder must know about it (no TensorRT).

- Labels: seg_ros exports ``ArgMax -> Cast(uint8)`` so onnxruntime hands back one byte per
  pixel. TensorRT documents uint8 conversions only from/to FLOAT and HALF, so the integer ->
  uint8 cast may not build; the builder parses a copy whose label cast is to INT32 instead
  (:func:`labels_to_int32`). The model file, and onnxruntime's output, stay as they are.
- Q/DQ: a model with QuantizeLinear/DequantizeLinear nodes carries its own int8 scales
  (explicit quantization) and needs no calibration; TensorRT takes only signed, symmetric
  (zero point 0) int8 there (:func:`qdq_problems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ops that move values without changing their type
SHAPE_OPS = ("Squeeze", "Unsqueeze", "Reshape", "Flatten", "Transpose", "Identity")
INTEGER_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT16", "UINT32", "UINT64")


def _producers(model: Any) -> dict[str, Any]:
    return {out: node for node in model.graph.node for out in node.output}


def _is_integer(name: str, model: Any, producers: dict[str, Any]) -> bool:
    """True when tensor ``name`` is integer: made by ArgMax/ArgMin (through shape-only ops)
    or typed so in value_info."""
    import onnx

    node = producers.get(name)
    while node is not None and node.op_type in SHAPE_OPS:  # ArgMax -> Squeeze -> Cast
        name = node.input[0]
        node = producers.get(name)
    if node is not None and node.op_type in ("ArgMax", "ArgMin"):
        return True
    ints = {getattr(onnx.TensorProto, t) for t in INTEGER_TYPES}
    for vi in model.graph.value_info:
        if vi.name == name:
            return vi.type.tensor_type.elem_type in ints
    return False


def labels_to_int32(model: Any) -> list[str]:
    """Turn every graph output made by an integer -> UINT8 Cast into an INT32 output, in
    place; returns the names of the outputs changed (empty when there was nothing to do)."""
    import onnx

    uint8, int32 = onnx.TensorProto.UINT8, onnx.TensorProto.INT32
    producers = _producers(model)
    changed = []
    for out in model.graph.output:
        node = producers.get(out.name)
        if node is None or node.op_type != "Cast" or out.type.tensor_type.elem_type != uint8:
            continue
        if not _is_integer(node.input[0], model, producers):
            continue  # a float -> uint8 cast is one TensorRT documents: leave it
        for attr in node.attribute:
            if attr.name == "to":
                attr.i = int32
        out.type.tensor_type.elem_type = int32
        changed.append(out.name)
    return changed


def tensorrt_onnx(path: str | Path, fp16: bool = False) -> tuple[bytes, list[str]]:
    """Serialized ONNX for TensorRT's parser: ``path`` converted to fp16 when asked (strongly
    typed TensorRT: :func:`seg_ros.engines.tensorrt.fp16.fp16_model`), then :func:`labels_to_int32`
    applied; and the outputs it changed."""
    import onnx

    model = onnx.load(str(path))
    if fp16:
        from seg_ros.engines.tensorrt.fp16 import fp16_model

        model, _ = fp16_model(model)
    changed = labels_to_int32(model)
    return model.SerializeToString(), changed


def has_qdq(model: Any) -> bool:
    """True for an explicitly quantized model (QuantizeLinear nodes)."""
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def qdq_problems(model: Any) -> list[str]:
    """Why TensorRT cannot take this Q/DQ model's quantization: unsigned (uint8) or
    asymmetric (non-zero zero point) QuantizeLinear nodes; [] when all are int8 symmetric."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    problems: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        zp = inits.get(node.input[2])
        if zp is None:
            continue
        if zp.data_type != onnx.TensorProto.INT8:
            problems.add(f"{onnx.TensorProto.DataType.Name(zp.data_type).lower()} quantization")
        if numpy_helper.to_array(zp).any():
            problems.add("non-zero zero points (asymmetric ranges)")
    return sorted(problems)
