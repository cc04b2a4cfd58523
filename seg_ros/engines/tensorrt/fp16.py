"""fp16 copy of a seg_ros ONNX model, for strongly typed TensorRT (11.x) and for inspection.

TensorRT 11 has no FP16 builder flag: a network runs in the types its ONNX graph carries, so
an fp16 engine needs an fp16 graph. The conversion is onnxruntime's own
``onnxruntime.transformers.float16.convert_float_to_float16`` (a Cast at each fp32/fp16 border,
initializers converted and clamped to the fp16 range), with:

- I/O kept fp32 (``keep_io_types``): the node, the engine buffers and the card's contract
  stay as they are (input float32, ``labels`` uint8, ``confidence`` float32);
- the numerically sensitive tail kept fp32: the upsample feeding ArgMax, ArgMax itself and the
  max-softmax ``confidence`` (Exp / ReduceSum / Reciprocal), the same nodes int8 quantization
  keeps float (:func:`seg_ros.engines.quantize.float_tail_nodes`), plus every op of
  :data:`SENSITIVE_OPS` wherever it appears (reductions and exponentials overflow or lose
  precision in half).

The TensorRT build converts in memory (:func:`fp16_model`) when a strongly typed TensorRT is
asked for fp16, so this lives with the engine; ``seg-ros quantize MODEL --target fp16``
writes the same graph to a file (:func:`seg_ros.modelprep.fp16.write_fp16`).
"""

from __future__ import annotations

from typing import Any

from seg_ros.errors import EngineError

# ops kept fp32 wherever they are: accumulations and exponentials that overflow fp16's 65504
# or lose the small differences argmax decides on
SENSITIVE_OPS = ("Softmax", "LogSoftmax", "Exp", "Log", "Pow", "ReduceSum", "ReduceMean",
                 "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Reciprocal", "ArgMax", "ArgMin",
                 "TopK", "Range", "CumSum", "NonMaxSuppression",
                 "LayerNormalization", "InstanceNormalization", "GroupNormalization")


def is_fp16_model(model: Any) -> bool:
    """True when ``model`` (an ONNX ModelProto) already computes in fp16 (float16 weights)."""
    import onnx

    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


def fp16_model(model: Any) -> tuple[Any, list[str]]:
    """An fp16 copy of ONNX ``model`` with fp32 I/O and an fp32 tail; returns (model, names of
    the nodes kept fp32). ``model`` is left unchanged. EngineError in one line when
    onnxruntime's converter fails on it."""
    import onnx
    from onnxruntime.transformers.float16 import (
        DEFAULT_OP_BLOCK_LIST,
        convert_float_to_float16,
    )

    from seg_ros.engines.quantize import float_tail_nodes, name_nodes

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if is_fp16_model(copy):
        return copy, []
    name_nodes(copy)  # the block list works by node name
    kept = float_tail_nodes(copy)
    try:
        converted = convert_float_to_float16(
            copy, keep_io_types=True, disable_shape_infer=False,
            op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *SENSITIVE_OPS}),
            node_block_list=kept)
    except Exception as e:  # the converter raises plain exceptions from deep inside
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EngineError(f"fp16 conversion failed ({first}): build --precision fp32, or "
                          "re-export the model with `seg-ros export`") from None
    sensitive = [n.name for n in converted.graph.node if n.op_type in SENSITIVE_OPS]
    return converted, sorted({*kept, *sensitive})
