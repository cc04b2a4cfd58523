"""`seg-ros quantize MODEL.onnx --calib-data DIR [--target cpu|tensorrt|fp16]`: a lower-precision
copy of an exported model. ``cpu``: uint8 asymmetric Q/DQ for onnxruntime's CPU kernels;
``tensorrt``: symmetric int8 Q/DQ (zero points 0) that TensorRT 10.1+ and 11.x build without a
calibrator; ``fp16``: the fp16 graph a strongly typed TensorRT (11.x) builds for
``--precision fp16``, written out for inspection (no calibration)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seg_ros.engines.quantize import METHODS, TARGETS
from seg_ros.errors import ConfigError

SUFFIX = {"cpu": "int8", "tensorrt": "trt-int8", "fp16": "fp16"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="float ONNX model exported by seg-ros (card embedded)")
    p.add_argument("--target", default="cpu", choices=[*TARGETS, "fp16"],
                   help="cpu: uint8 Q/DQ for onnxruntime (default); tensorrt: symmetric int8 "
                        "Q/DQ for TensorRT; fp16: the fp16 graph TensorRT 11 builds")
    p.add_argument("--calib-data", default=None,
                   help="int8: folder of training frames to calibrate on (never the eval split)")
    p.add_argument("--calib-frames", type=int, default=100,
                   help="frames used, spread evenly over the folder (default 100)")
    p.add_argument("--method", default="minmax", choices=METHODS,
                   help="activation range estimator (default minmax)")
    p.add_argument("--float-convs", type=int, default=None,
                   help="int8: keep the first N convolutions float (default 3 for tensorrt, "
                        "0 for cpu): the full-resolution stem loses most to int8")
    p.add_argument("--out", type=Path, default=None,
                   help="output model (default MODEL.int8.onnx, MODEL.trt-int8.onnx or "
                        "MODEL.fp16.onnx by --target)")


def run(args: argparse.Namespace) -> int:
    model = Path(args.model)
    out = args.out or model.with_name(f"{model.stem}.{SUFFIX[args.target]}.onnx")
    if args.target == "fp16":
        from seg_ros.modelprep.fp16 import write_fp16

        if args.calib_data is not None:
            raise ConfigError("--calib-data is for the int8 targets: drop it with --target fp16")
        kept = write_fp16(model, out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, fp16; kept fp32: "
              f"{', '.join(kept)})")
        return 0
    from seg_ros.engines.quantize import quantize_onnx

    if args.calib_data is None:
        raise ConfigError(f"--target {args.target} needs --calib-data DIR (a folder of training "
                          "frames, ~100 used) to measure activation ranges")
    if args.float_convs is not None and args.float_convs < 0:
        raise ConfigError(f"--float-convs {args.float_convs} must be >= 0")
    quantize_onnx(model, args.calib_data, out, calib_frames=args.calib_frames,
                  method=args.method, log=print, target=args.target,
                  float_convs=args.float_convs)
    return 0
