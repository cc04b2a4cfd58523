"""TensorRT engine I/O: dtype mapping and the checks of an engine's tensors against the model
card. Plain functions on names and shapes, so they run (and are tested) without TensorRT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seg_ros.engines.outputs import OutputSpec, check_card_outputs
from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard

# TensorRT DataType name -> numpy dtype. By name so it is testable without tensorrt.
# BF16 / FP8 / INT4 / FP4 have no plain numpy dtype: such I/O tensors are refused.
TRT_TO_NUMPY: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}
NUMPY_TO_TRT: dict[np.dtype, str] = {v: k for k, v in TRT_TO_NUMPY.items()}


def trt_dtype_name(dtype: object) -> str:
    """'FLOAT' for ``trt.DataType.FLOAT``, ``"DataType.FLOAT"`` or ``"float"``."""
    name = getattr(dtype, "name", None) or str(dtype)
    return name.rsplit(".", 1)[-1].upper()


def numpy_dtype(trt_dtype: object) -> np.dtype:
    """numpy dtype of a TensorRT DataType (enum or name); EngineError for BF16/FP8/INT4 I/O."""
    name = trt_dtype_name(trt_dtype)
    if name not in TRT_TO_NUMPY:
        raise EngineError(
            f"TensorRT I/O tensor type {name} has no numpy equivalent: rebuild the engine with "
            "float32 inputs/outputs (`seg-ros build-engine` keeps I/O float32)"
        )
    return TRT_TO_NUMPY[name]


def trt_name_of(dtype: np.dtype | type) -> str:
    """TensorRT DataType name of a numpy dtype (the inverse of :func:`numpy_dtype`)."""
    dt = np.dtype(dtype)
    if dt not in NUMPY_TO_TRT:
        raise EngineError(f"numpy dtype {dt} has no TensorRT equivalent")
    return NUMPY_TO_TRT[dt]


# --- I/O specs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor. ``shape`` uses -1 for dynamic dims; ``is_input`` by mode."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]


def tensor_specs(engine: Any) -> list[TensorSpec]:
    """I/O tensors of a deserialized ``trt.ICudaEngine`` via the TRT 10 named-tensor API."""
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = trt_dtype_name(engine.get_tensor_mode(name))  # TensorIOMode.INPUT / OUTPUT
        specs.append(TensorSpec(name, mode == "INPUT", numpy_dtype(engine.get_tensor_dtype(name)),
                                tuple(int(d) for d in engine.get_tensor_shape(name))))
    return specs


def validate_specs(specs: list[TensorSpec], card: ModelCard, source: str
                   ) -> tuple[TensorSpec, list[TensorSpec]]:
    """Check engine I/O against the card; returns (input, outputs). One float input
    (N, 3, H, W) with (H, W) = card.input_size (N may be dynamic, it is set to 1); the card's
    output present with the type and class count its convention needs
    (:func:`seg_ros.engines.outputs.check_card_outputs`, as for every backend); a
    ``confidence`` output, where there is one, float."""
    inputs = [s for s in specs if s.is_input]
    outputs = [s for s in specs if not s.is_input]
    rebuild = "rebuild it from the matching .onnx with `seg-ros build-engine`"
    if len(inputs) != 1:
        raise EngineError(f"{source}: the engine has {len(inputs)} inputs "
                          f"({[s.name for s in inputs]}); seg_ros needs exactly one: {rebuild}")
    inp = inputs[0]
    if inp.dtype.kind != "f":
        raise EngineError(f"{source}: input {inp.name!r} is {inp.dtype}, expected float32: "
                          f"{rebuild}")
    want = card.input_shape()  # (1, 3, H, W), or (1, H, W, 3) for input_layout nhwc
    if len(inp.shape) != 4 or inp.shape[0] not in (1, -1) or tuple(inp.shape[1:]) != want[1:]:
        raise EngineError(
            f"{source}: input {inp.name!r} has shape {inp.shape} but the card wants "
            f"{want} (input_layout {card.input_layout}): fix the card's input_size / "
            f"input_layout or {rebuild}"
        )
    check_card_outputs(card, [OutputSpec(o.name, tuple(d if d >= 0 else None for d in o.shape),
                                         o.dtype.kind) for o in outputs], source)
    conf = next((o for o in outputs if o.name == "confidence"), None)
    if conf is not None and conf.dtype.kind != "f":
        raise EngineError(f"{source}: output 'confidence' is {conf.dtype}, expected float: "
                          f"{rebuild}")
    return inp, outputs


def concrete_shape(name: str, shape: tuple[int, ...], source: str) -> tuple[int, ...]:
    """``shape`` when every dim is known; EngineError when a -1 (dynamic) dim is left after
    the input shape was set, instead of allocating a buffer of nonsense size."""
    if any(int(d) < 0 for d in shape):
        raise EngineError(f"{source}: tensor {name!r} still has dynamic shape {tuple(shape)} "
                          "after the input shape was set: rebuild the engine from an ONNX "
                          "with a fixed (1, 3, H, W) input (`seg-ros export`)")
    return tuple(int(d) for d in shape)
