"""What the installed TensorRT can do, and how to build the asked precision with it.

TensorRT 10.1 deprecates implicit int8 calibration and later releases drop the FP16/INT8
builder flags and the calibrators (networks become strongly typed): features are read by name
(:func:`trt_caps`) and :func:`precision_plan` picks the path -- builder flags, explicit Q/DQ
int8, or calibration -- or says why the asked precision cannot be built. Also the shapes of the
optimisation profile for dynamic inputs. No TensorRT import: tested on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seg_ros.engines.trt_cache import PRECISIONS
from seg_ros.errors import ConfigError, EngineError


@dataclass(frozen=True)
class TrtCaps:
    """Features of the installed TensorRT that decide the precision path, read by name so
    releases that drop them (``BuilderFlag.FP16/INT8``, the int8 calibrators) are handled."""

    version: str
    flags: frozenset[str]  # BuilderFlag member names present (FP16, INT8, GPU_FALLBACK)
    implicit_int8: bool  # IInt8EntropyCalibrator2 exists


def trt_caps(trt: Any) -> TrtCaps:
    flags = frozenset(n for n in ("FP16", "INT8", "GPU_FALLBACK") if hasattr(trt.BuilderFlag, n))
    return TrtCaps(str(trt.__version__), flags, hasattr(trt, "IInt8EntropyCalibrator2"))


@dataclass(frozen=True)
class PrecisionPlan:
    """Builder flags to set, whether to calibrate, and the path taken in words."""

    flags: tuple[str, ...]
    calibrate: bool
    path: str


def _precision_flags(wanted: Iterable[str], caps: TrtCaps, dla: bool) -> tuple[str, ...]:
    flags = [f for f in wanted if f in caps.flags]
    if dla and "GPU_FALLBACK" in caps.flags:
        flags.append("GPU_FALLBACK")
    return tuple(flags)


def precision_plan(precision: str, caps: TrtCaps, qdq: bool, dla: bool = False
                   ) -> PrecisionPlan:
    """How to build ``precision`` with this TensorRT. int8 keeps FP16 on so layers without
    int8 kernels fall back to half, not float; a Q/DQ model is built from its own scales
    (explicit quantization, no calibration); implicit calibration is used only for a float
    model and only where this TensorRT still has it (deprecated in 10.1, gone later)."""
    v = caps.version
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if qdq:
        return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), False,
                             "int8 explicit quantization (Q/DQ scales from the ONNX)")
    if precision == "fp32":
        return PrecisionPlan(_precision_flags((), caps, dla), False, "fp32")
    if precision == "fp16":
        if "FP16" not in caps.flags:
            raise EngineError(f"TensorRT {v} has no FP16 builder flag (its networks are strongly "
                              "typed): build --precision fp32, or export an fp16 ONNX")
        return PrecisionPlan(_precision_flags(("FP16",), caps, dla), False, "fp16")
    if not (caps.implicit_int8 and "INT8" in caps.flags):
        raise EngineError(f"TensorRT {v} has no implicit int8 calibration: give a Q/DQ ONNX with "
                          "symmetric int8 scales (explicit quantization) and --precision int8")
    return PrecisionPlan(_precision_flags(("INT8", "FP16"), caps, dla), True,
                         "int8 implicit calibration (IInt8EntropyCalibrator2, deprecated since "
                         "TensorRT 10.1; a Q/DQ model avoids it)")


def profile_shapes(shape: tuple[int, ...], input_size: tuple[int, int], max_batch: int = 1
                   ) -> tuple[tuple[int, ...], ...] | None:
    """(min, opt, max) shapes for an input with dynamic dims: the card's H x W, and a dynamic
    batch from 1 to ``max_batch`` (optimised for ``max_batch``: several cameras' frames in one
    call); None when ``shape`` is fully static (no profile needed)."""
    if all(int(d) >= 0 for d in shape):
        return None
    if len(shape) != 4:
        raise EngineError(f"dynamic input of shape {tuple(shape)} is not (N, 3, H, W): "
                          "re-export the model with an NCHW image input")
    fixed = (max_batch, 3, *input_size)
    top = tuple(int(d) if int(d) >= 0 else fixed[i] for i, d in enumerate(shape))
    return (1, *top[1:]) if int(shape[0]) < 0 else top, top, top
