"""`seg-ros build-engine MODEL.onnx --precision fp16`: a TensorRT engine + its card sidecar.

TensorRT 10.x builds fp16 / int8 with its builder flags (int8: a calibrator over --calib-data);
TensorRT 11.x (strongly typed) builds an fp16 copy of the graph for fp16 and a symmetric int8
Q/DQ copy calibrated on --calib-data for int8 (docs/gpu.md). A Q/DQ model (`seg-ros quantize
MODEL --target tensorrt`) builds as int8 on both without --calib-data."""

from __future__ import annotations

import argparse
from pathlib import Path

from seg_ros.engines.tensorrt.cache import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported ONNX model (with its embedded card)")
    p.add_argument("--precision", default="fp16", choices=PRECISIONS,
                   help="engine precision (int8: --calib-data DIR, or give the Q/DQ model "
                        "`seg-ros quantize --target tensorrt` writes)")
    p.add_argument("--calib-data", default=None,
                   help="int8: folder of training frames to calibrate on (never the eval split)")
    p.add_argument("--calib-frames", type=int, default=100,
                   help="int8: frames used, spread evenly over the folder (default 100)")
    p.add_argument("--calib-cache", type=Path, default=None,
                   help="int8: calibration table file, reused when present "
                        "(default MODEL.<sha>.calib next to the engine)")
    p.add_argument("--workspace-mb", type=int, default=1024,
                   help="builder scratch memory limit in MiB (default 1024)")
    p.add_argument("--dla-core", type=int, default=None,
                   help="Jetson only: run on this DLA core, unsupported layers on the GPU")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="engine file (default MODEL.<precision>.engine)")
    p.add_argument("--timing-cache", type=Path, default=None,
                   help="timing cache file loaded before and saved after the build")
    p.add_argument("--batch", type=int, default=1,
                   help="most frames per call (one per camera of a node with `cameras`): an "
                        "optimisation profile of 1..N; needs an ONNX exported with "
                        "`seg-ros export --batch dynamic`")


def run(args: argparse.Namespace) -> int:
    from seg_ros.engines.tensorrt.build import build_engine
    from seg_ros.engines.tensorrt.options import BuildOptions, validate_build_options
    from seg_ros.model_card import sidecar_path

    options = validate_build_options(args.model, BuildOptions(
        precision=args.precision, out=args.out, calib_data=args.calib_data,
        calib_frames=args.calib_frames, calib_cache=args.calib_cache,
        workspace_mb=args.workspace_mb, dla_core=args.dla_core,
        timing_cache=args.timing_cache, device_index=args.device, max_batch=args.batch,
    ))
    out = build_engine(args.model, options)
    print(f"engine  {out}\ncard    {sidecar_path(out)}")
    return 0
