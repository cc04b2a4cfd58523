"""What the installed TensorRT can do, and how to build the asked precision with it.

TensorRT 10.1 deprecates implicit int8 calibration and 11.x drops the FP16/INT8 builder flags
and the calibrators (networks are strongly typed): features are read by name
(:func:`trt_caps`) and :func:`precision_plan` picks the path -- builder flags, explicit Q/DQ
int8, calibration, or a converted (fp16 / int8 Q/DQ) graph in a strongly typed network -- or
says why the asked precision cannot be built. Also the shapes of the
optimisation profile for dynamic inputs. No TensorRT import: tested on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seg_ros.engines.tensorrt.cache import PRECISIONS
from seg_ros.errors import ConfigError, EngineError


@dataclass(frozen=True)
class TrtCaps:
    """Features of the installed TensorRT that decide the precision path, read by name so
    releases that drop them (``BuilderFlag.FP16/INT8``, the int8 calibrators) are handled."""

    version: str
    flags: frozenset[str]  # BuilderFlag member names present (FP16, INT8, GPU_FALLBACK)
    implicit_int8: bool  # IInt8EntropyCalibrator2 exists
    strongly_typed: bool = False  # every network is typed by its graph (no FP16 flag: 11.x)


def trt_caps(trt: Any) -> TrtCaps:
    """What ``trt`` offers. TensorRT 11 has no precision builder flags and always builds
    strongly typed networks (its ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is kept but
    ignored), so the missing FP16 flag is what says so."""
    flags = frozenset(n for n in ("FP16", "INT8", "GPU_FALLBACK") if hasattr(trt.BuilderFlag, n))
    return TrtCaps(str(trt.__version__), flags, hasattr(trt, "IInt8EntropyCalibrator2"),
                   "FP16" not in flags)


@dataclass(frozen=True)
class PrecisionPlan:
    """Builder flags to set, whether to calibrate, and the path taken in words.
    ``strongly_typed``: the ONNX graph's types decide the precision (TensorRT 11);
    ``convert``: the graph the build parses instead of the float model -- 'fp16'
    (:func:`seg_ros.engines.tensorrt.fp16.fp16_model`) or 'int8' (symmetric int8 Q/DQ calibrated on
    --calib-data, :func:`seg_ros.engines.quantize.quantize_onnx` with target 'tensorrt')."""

    flags: tuple[str, ...]
    calibrate: bool
    path: str
    convert: str | None = None
    strongly_typed: bool = False


def _precision_flags(wanted: Iterable[str], caps: TrtCaps, dla: bool) -> tuple[str, ...]:
    flags = [f for f in wanted if f in caps.flags]
    if dla and "GPU_FALLBACK" in caps.flags:
        flags.append("GPU_FALLBACK")
    return tuple(flags)


STRONG = "strongly typed network"


def precision_plan(precision: str, caps: TrtCaps, qdq: bool, dla: bool = False
                   ) -> PrecisionPlan:
    """How to build ``precision`` with this TensorRT, chosen by what it offers, not its version.

    With precision builder flags (TensorRT 10.x): int8 keeps FP16 on so layers without int8
    kernels fall back to half, not float; a Q/DQ model is built from its own scales (explicit
    quantization); implicit calibration only for a float model, where it still exists
    (deprecated in 10.1). Without them (TensorRT 11.x, strongly typed networks) the graph
    carries the precision: fp16 builds an fp16 copy of the graph, int8 a symmetric int8 Q/DQ
    copy calibrated on --calib-data, and a Q/DQ model is taken as it is."""
    v = caps.version
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    typed = caps.strongly_typed and "FP16" not in caps.flags  # the graph's types decide
    if qdq:
        return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), False,
                             "int8 explicit quantization (Q/DQ scales from the ONNX)"
                             + (f", {STRONG}" if typed else ""), strongly_typed=typed)
    if precision == "fp32":
        return PrecisionPlan(_precision_flags((), caps, dla), False,
                             "fp32" + (f", {STRONG}" if typed else ""), strongly_typed=typed)
    if precision == "fp16":
        if "FP16" in caps.flags:
            return PrecisionPlan(_precision_flags(("FP16",), caps, dla), False, "fp16")
        if typed:
            return PrecisionPlan(_precision_flags((), caps, dla), False,
                                 f"fp16 graph (converted from the float ONNX, I/O and the "
                                 f"argmax/softmax tail fp32), {STRONG}", "fp16", True)
        raise EngineError(f"TensorRT {v} has neither an FP16 builder flag nor strongly typed "
                          "networks: build --precision fp32, or install TensorRT 10.3 .. 11.x")
    if caps.implicit_int8 and "INT8" in caps.flags:
        return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), True,
                             "int8 implicit calibration (IInt8EntropyCalibrator2, deprecated "
                             "since TensorRT 10.1; a Q/DQ model avoids it)")
    if typed:
        return PrecisionPlan(_precision_flags((), caps, dla), False,
                             "int8 symmetric Q/DQ graph (calibrated on --calib-data by "
                             f"onnxruntime, no TensorRT calibrator), {STRONG}", "int8", True)
    raise EngineError(f"TensorRT {v} has no implicit int8 calibration: give a Q/DQ ONNX with "
                      "symmetric int8 scales (`seg-ros quantize MODEL --target tensorrt`) and "
                      "--precision int8")


def profile_shapes(shape: tuple[int, ...], input_size: tuple[int, int], max_batch: int = 1,
                   input_layout: str = "nchw") -> tuple[tuple[int, ...], ...] | None:
    """(min, opt, max) shapes for an input with dynamic dims: the card's H x W, and a dynamic
    batch from 1 to ``max_batch`` (optimised for ``max_batch``: several cameras' frames in one
    call); None when ``shape`` is fully static (no profile needed)."""
    if all(int(d) >= 0 for d in shape):
        return None
    if len(shape) != 4:
        raise EngineError(f"dynamic input of shape {tuple(shape)} is not (N, 3, H, W) or "
                          "(N, H, W, 3): re-export the model with an image input")
    fixed = (max_batch, *input_size, 3) if input_layout == "nhwc" else (max_batch, 3, *input_size)
    top = tuple(int(d) if int(d) >= 0 else fixed[i] for i, d in enumerate(shape))
    return (1, *top[1:]) if int(shape[0]) < 0 else top, top, top
