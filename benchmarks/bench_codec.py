"""Codec cost per frame: decode every raw encoding, JPEG/PNG, and the encoders the node uses.

Keys are ``decode_ms_<encoding>_<W>x<H>`` etc., medians in milliseconds. Inputs come from a
smooth synthetic scene (realistic JPEG/PNG sizes; raw decode cost does not depend on content).
Each call gets a different copy of the message, cycling through more bytes than the L3 cache
holds, as a live topic does: warm-cache medians would flatter the memory-bound conversions.
Raw messages are unpadded except ``rgb8_padded`` (64 bytes per row).
"""

from __future__ import annotations

import array
import itertools
from collections.abc import Callable
from functools import partial
from typing import Any

import cv2
import numpy as np

from seg_ros.codec import (
    ENCODINGS,
    decode_compressed,
    decode_raw,
    encode_compressed,
    encode_raw,
)
from seg_ros.timing import median_ms

SIZES = ((640, 480), (1920, 1080))
_COLD_BYTES = 96 << 20  # cycle through this much input per timing (> L3 of current servers)
_BAYER = {
    "bayer_rggb8": "RGGB",
    "bayer_bggr8": "BGGR",
    "bayer_gbrg8": "GBRG",
    "bayer_grbg8": "GRBG",
}


def _scene(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, ((x // 16 + y // 16) % 2) * 200], -1)
    return rgb.astype(np.uint8)


def _raw_message(enc: str, rgb: np.ndarray) -> tuple[int, bytes]:
    """(step, data) of an unpadded message in ``enc``."""
    h, w = rgb.shape[:2]
    if enc in ("rgb8",):
        px = rgb
    elif enc in ("bgr8", "8UC3"):
        px = rgb[..., ::-1]
    elif enc in ("rgba8", "bgra8", "8UC4"):
        px = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
    elif enc in ("mono8", "8UC1"):
        px = rgb[..., 1]
    elif enc in ("mono16", "16UC1"):
        px = (rgb[..., 1].astype(np.uint16) * 257).view(np.uint8).reshape(h, -1)
    elif enc in _BAYER:
        px = np.empty((h, w), np.uint8)
        for (dy, dx), ch in zip(((0, 0), (0, 1), (1, 0), (1, 1)), _BAYER[enc]):
            px[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(ch)]
    elif enc in ("yuv422", "uyvy"):
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    elif enc in ("yuv422_yuy2", "yuyv"):
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)
    elif enc in ("nv12", "nv21"):  # byte layout differs from I420 but costs the same to decode
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    else:
        raise KeyError(enc)
    rows = np.ascontiguousarray(px).reshape(px.shape[0], -1)
    return rows.shape[1], rows.tobytes()


def _copies(data: bytes) -> list[array.array]:
    """Distinct array.array('B') copies (rclpy's msg.data type) totalling ~_COLD_BYTES."""
    n = min(128, max(4, -(-_COLD_BYTES // max(len(data), 1))))
    return [array.array("B", data) for _ in range(n)]


def _cold(fn: Callable[[Any], object], data: bytes) -> Callable[[], object]:
    """fn(next copy of data): every call reads memory no earlier call left in cache."""
    it = itertools.cycle(_copies(data))
    return lambda: fn(next(it))


def run() -> dict[str, float]:
    out: dict[str, float] = {}
    for w, h in SIZES:
        out.update(_bench_size(w, h))
    return out


def _bench_size(w: int, h: int) -> dict[str, float]:
    out: dict[str, float] = {}
    size = f"{w}x{h}"
    reps = 30 if w * h <= 640 * 480 else 10
    rgb = _scene(w, h)
    for enc in sorted(ENCODINGS):
        step, data = _raw_message(enc, rgb)
        out[f"decode_ms_{enc}_{size}"] = median_ms(
            _cold(partial(decode_raw, enc, h, w, step), data), repeats=reps
        )
    padded = np.zeros((h, w * 3 + 64), np.uint8)
    padded[:, : w * 3] = rgb.reshape(h, -1)
    out[f"decode_ms_rgb8_padded_{size}"] = median_ms(
        _cold(lambda d: decode_raw("rgb8", h, w, w * 3 + 64, d), padded.tobytes()), repeats=reps
    )
    for codec in ("jpeg", "png"):
        fmt, blob = encode_compressed(rgb, codec)
        out[f"decode_ms_{codec}_{size}"] = median_ms(
            _cold(partial(decode_compressed, fmt), blob), repeats=reps
        )
        out[f"encode_ms_{codec}_{size}"] = median_ms(
            partial(encode_compressed, rgb, codec), repeats=reps
        )
    labels = (rgb[..., 0] // 32).astype(np.int64)  # argmax output dtype
    out[f"encode_ms_mono8_int64_labels_{size}"] = median_ms(
        lambda: encode_raw(labels, "mono8"), repeats=reps
    )
    labels8 = labels.astype(np.uint8)
    out[f"encode_ms_mono8_to_msg_data_{size}"] = median_ms(  # encode + copy into array('B')
        lambda: array.array("B").frombytes(encode_raw(labels8, "mono8")[1]), repeats=reps
    )
    out[f"encode_ms_rgb8_to_msg_data_{size}"] = median_ms(
        lambda: array.array("B").frombytes(encode_raw(rgb, "rgb8")[1]), repeats=reps
    )
    return out
