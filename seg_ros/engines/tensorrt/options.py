"""``seg-ros build-engine`` arguments: the options, and their checks before any GPU work.

Every check names the flag and the fix (ConfigError), so a wrong argument costs a second, not a
minutes-long build on a Jetson. No TensorRT import: tested on any machine.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path

from seg_ros.engines.calibration import list_frames
from seg_ros.engines.tensorrt.cache import PRECISIONS
from seg_ros.engines.tensorrt.graph import has_qdq, qdq_problems
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import file_sha256


@dataclass(frozen=True)
class BuildOptions:
    """``seg-ros build-engine`` settings. ``workspace_mb``: builder scratch memory in MiB;
    ``dla_core``: DLA index on Jetson Xavier/Orin (None = GPU only); ``timing_cache``: file
    of measured kernel timings reused across builds; ``calib_cache``: int8 calibration table."""

    precision: str = "fp16"
    out: Path | None = None
    calib_data: str | Path | None = None
    calib_frames: int = 100
    calib_cache: Path | None = None
    workspace_mb: int = 1024
    dla_core: int | None = None
    timing_cache: Path | None = None
    device_index: int = 0
    cache_key: str | None = None
    max_batch: int = 1  # frames per call: > 1 needs an ONNX with a dynamic batch dimension


def is_jetson(root: str | Path = "/") -> bool:
    """True on an NVIDIA Jetson (L4T): the only machines with DLA cores."""
    root = Path(root)
    if (root / "etc/nv_tegra_release").is_file():
        return True
    model = root / "proc/device-tree/model"
    try:
        return "jetson" in model.read_text(errors="ignore").lower()
    except OSError:
        return False


def default_engine_path(onnx: Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.fp16.engine`` next to it."""
    return onnx.with_name(f"{onnx.stem}.{precision}.engine")


def is_qdq_model(onnx: Path) -> bool:
    """True when ``onnx`` is explicitly quantized (Q/DQ); ConfigError when TensorRT cannot
    take its quantization (``seg-ros quantize`` makes uint8 asymmetric Q/DQ for the CPU)."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    if not has_qdq(model):
        return False
    problems = qdq_problems(model)
    if problems:
        raise ConfigError(
            f"{onnx} is quantized with {' and '.join(problems)}, which TensorRT does not take "
            "(it needs signed int8 with zero points 0): build the float model with --precision "
            "int8 --calib-data DIR, or give a Q/DQ model with symmetric int8 scales")
    return True


def _check_precision_args(onnx: Path, options: BuildOptions) -> None:
    if options.precision not in PRECISIONS:
        raise ConfigError(f"--precision {options.precision!r}: choose one of "
                          f"{', '.join(PRECISIONS)}")
    if options.calib_frames <= 0:
        raise ConfigError(f"--calib-frames {options.calib_frames} must be > 0 (100 is typical)")
    if is_qdq_model(onnx):
        if options.precision != "int8" or options.calib_data is not None:
            raise ConfigError(f"{onnx} carries its own int8 scales (Q/DQ): build it with "
                              "--precision int8 and without --calib-data")
    elif options.precision == "int8":
        if options.calib_data is None:
            raise ConfigError("--precision int8 needs --calib-data DIR (a folder of training "
                              "frames, ~100 used) to calibrate activation ranges")
        list_frames(options.calib_data, options.calib_frames)  # folder + count checks
    elif options.calib_data is not None:
        raise ConfigError(f"--calib-data is only used with --precision int8, not "
                          f"{options.precision}: drop it or add --precision int8")


def _check_dla_args(options: BuildOptions, jetson: bool | None) -> None:
    if options.dla_core is None:
        return
    if options.dla_core < 0:
        raise ConfigError(f"--dla-core {options.dla_core} must be >= 0 (0 or 1 on Orin)")
    if options.precision == "fp32":
        raise ConfigError(f"--dla-core {options.dla_core} needs --precision fp16 or int8: "
                          "DLA cores have no fp32")
    if not (is_jetson() if jetson is None else jetson):
        raise ConfigError(f"--dla-core {options.dla_core} needs a Jetson with DLA "
                          f"(Xavier / Orin) but this is a {platform.machine()} machine "
                          "without one: drop --dla-core to build for the GPU")


def validate_build_options(onnx: str | Path, options: BuildOptions,
                           jetson: bool | None = None) -> BuildOptions:
    """Check arguments before any GPU work; returns the options with defaults filled in
    (output path, calibration cache path). ConfigError names the flag and the fix."""
    onnx = Path(onnx)
    if onnx.suffix.lower() != ".onnx":
        raise ConfigError(f"{onnx} is not an .onnx file: build-engine takes the exported ONNX "
                          "model (`seg-ros export`)")
    if not onnx.is_file():
        raise ConfigError(f"model file {onnx} does not exist: check the path")
    _check_precision_args(onnx, options)
    if options.workspace_mb <= 0:
        raise ConfigError(f"--workspace-mb {options.workspace_mb} must be > 0 (MiB of builder "
                          "scratch memory; 1024 is typical, 256 on small Jetsons)")
    _check_dla_args(options, jetson)
    if options.max_batch < 1:
        raise ConfigError(f"--batch {options.max_batch} must be >= 1 (frames per engine call; "
                          "several cameras: their number)")
    out = Path(options.out) if options.out else default_engine_path(onnx, options.precision)
    if out.suffix not in (".engine", ".plan"):
        raise ConfigError(f"--out {out} must end in .engine or .plan (the sidecar "
                          f"{out.name}.json goes next to it)")
    calib_cache = options.calib_cache
    if options.calib_data is not None and calib_cache is None:
        calib_cache = out.with_name(f"{onnx.stem}.{file_sha256(onnx)[:12]}.calib")
    return replace(options, out=out, calib_cache=calib_cache)


def check_dla_core(core: int, cores: int) -> None:
    """EngineError when this device has no DLA core ``core`` (``cores`` of them)."""
    if cores <= 0:
        raise EngineError(f"--dla-core {core}: this device has no DLA cores: drop --dla-core "
                          "to build for the GPU")
    if core >= cores:
        raise EngineError(f"--dla-core {core}: this device has {cores} DLA core"
                          f"{'s' if cores > 1 else ''}: use 0..{cores - 1} or drop --dla-core")
