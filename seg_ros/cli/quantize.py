"""`seg-ros quantize MODEL.onnx --calib-data DIR --out MODEL.int8.onnx`: int8 for the CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from seg_ros.engines.quantize import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="float ONNX model exported by seg-ros (card embedded)")
    p.add_argument("--calib-data", required=True,
                   help="folder of training frames to calibrate on (never the eval split)")
    p.add_argument("--calib-frames", type=int, default=100,
                   help="frames used, spread evenly over the folder (default 100)")
    p.add_argument("--method", default="minmax", choices=METHODS,
                   help="activation range estimator (default minmax)")
    p.add_argument("--out", type=Path, default=None,
                   help="int8 model file (default MODEL.int8.onnx)")


def run(args: argparse.Namespace) -> int:
    from seg_ros.engines.quantize import quantize_onnx

    model = Path(args.model)
    out = args.out or model.with_name(f"{model.stem}.int8.onnx")
    quantize_onnx(model, args.calib_data, out, calib_frames=args.calib_frames,
                  method=args.method, log=print)
    return 0
