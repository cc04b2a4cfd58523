"""Depth image fields -> metres, the REP 118 conventions.

REP 118: ``16UC1`` holds millimetres (uint16), ``32FC1`` metres (float32); 0 (16UC1) and NaN,
+-inf or 0 (32FC1) mean "no return". Every no-return pixel becomes NaN, so arithmetic on the
result (rays x depth) propagates it and consumers test ``np.isfinite``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seg_ros.errors import CodecError

# encoding -> numpy dtype: uint16 millimetres or float32 metres
_DEPTH: dict[str, str] = {"16UC1": "u2", "mono16": "u2", "32FC1": "f4"}
DEPTH_ENCODINGS: tuple[str, ...] = tuple(_DEPTH)
MAX_DEPTH_PIXELS = 50_000_000  # a depth image larger than this is a broken header


def _mm_table() -> np.ndarray:
    """uint16 millimetres -> float32 metres, 0 -> NaN: one gather per image."""
    table = np.arange(65536, dtype=np.float32) * np.float32(1e-3)
    table[0] = np.nan
    return table


_MM_TO_M = _mm_table()


def depth_to_metres(encoding: str, height: int, width: int, step: int, data: Any,
                    is_bigendian: bool = False) -> np.ndarray:
    """sensor_msgs/Image depth fields -> (height, width) float32 metres, NaN = no return.

    Accepts 16UC1 (and mono16, as some drivers label it) in millimetres and 32FC1 in metres,
    either byte order, any row padding. Raises CodecError naming the fix for anything else.
    """
    if encoding not in _DEPTH:
        raise CodecError(f"depth encoding {encoding!r} is not a depth image; publish 16UC1 "
                         "(millimetres) or 32FC1 (metres), REP 118, e.g. the camera driver's "
                         "aligned_depth_to_color/image_raw")
    kind = _DEPTH[encoding]
    h, w, step = int(height), int(width), int(step)
    itemsize = int(kind[1])
    if h <= 0 or w <= 0 or h * w > MAX_DEPTH_PIXELS:
        raise CodecError(f"depth image is {w}x{h}: empty or absurd; check the driver's "
                         "height and width")
    if step < w * itemsize:
        raise CodecError(f"depth step {step} < width*{itemsize} = {w * itemsize} bytes for "
                         f"{encoding}: check the publisher's step and encoding")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < step * h:
        raise CodecError(f"depth data has {buf.size} bytes, {w}x{h} {encoding} with step {step} "
                         f"needs {step * h}: the message is truncated")
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    rows = buf[:step * h].reshape(h, step)[:, :w * itemsize]
    raw = np.ascontiguousarray(rows).view(dtype).reshape(h, w)
    if kind == "u2":
        return _MM_TO_M[raw.astype(np.uint16, copy=False)]
    metres = raw.astype(np.float32)  # a copy in native order: the message stays untouched
    metres[~(metres > 0) | np.isinf(metres)] = np.nan
    return metres
