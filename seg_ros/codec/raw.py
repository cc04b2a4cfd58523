"""Raw sensor_msgs/Image fields <-> NumPy arrays (every common encoding), and the size
limit every decoder applies. ROS-free: NumPy + OpenCV."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from seg_ros.errors import CodecError

# encoding -> (bytes per pixel in the Y/packed plane, family). Families decide the conversion.
_LAYOUT: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "8UC3": (3, "bgr"),  # cv_bridge treats bare 8UC3 as bgr8
    "rgba8": (4, "rgba"),
    "bgra8": (4, "bgra"),
    "8UC4": (4, "bgra"),  # cv_bridge treats bare 8UC4 as bgra8
    "mono8": (1, "mono8"),
    "8UC1": (1, "mono8"),
    "mono16": (2, "mono16"),
    "16UC1": (2, "mono16"),
    "bayer_rggb8": (1, "bayer"),
    "bayer_bggr8": (1, "bayer"),
    "bayer_gbrg8": (1, "bayer"),
    "bayer_grbg8": (1, "bayer"),
    "yuv422": (2, "yuv422"),  # ROS yuv422 is UYVY (U0 Y0 V0 Y1)
    "uyvy": (2, "yuv422"),
    "yuv422_yuy2": (2, "yuv422"),  # YUY2 = YUYV (Y0 U0 Y1 V0)
    "yuyv": (2, "yuv422"),
    "nv12": (1, "yuv420sp"),  # Y plane (H rows) then interleaved UV plane (H/2 rows), same step
    "nv21": (1, "yuv420sp"),  # as nv12 with VU order
}

ENCODINGS: frozenset[str] = frozenset(_LAYOUT)
"""Every raw sensor_msgs/Image encoding :func:`decode_raw` accepts (case-sensitive, as ROS)."""

# OpenCV names Bayer patterns by the 2x2 block starting at (1, 1), ROS by the one at (0, 0), so
# ROS rggb is OpenCV "BG" (cv_bridge: bayer_rggb8 -> COLOR_BayerBG2BGR). OpenCV >= 4.10 also has
# the unambiguous COLOR_BayerRGGB2RGB (same value); the old names work on every version.
_CV_CODE: dict[str, int] = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    "nv12": cv2.COLOR_YUV2RGB_NV12,
    "nv21": cv2.COLOR_YUV2RGB_NV21,
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "8UC4": cv2.COLOR_BGRA2RGB,
}

_EVEN_WIDTH = frozenset({"yuv422", "yuv420sp"})
_LOWER = {e.lower(): e for e in _LAYOUT}

RAW_OUTPUT_ENCODINGS: frozenset[str] = frozenset(
    {"mono8", "8UC1", "mono16", "16UC1", "rgb8", "bgr8"}
)
"""Encodings :func:`encode_raw` writes (labels: mono8/mono16; colour overlays: rgb8/bgr8)."""

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest image decoded (width x height): above every real camera, below what would exhaust a
small robot computer's memory (a 20000x20000 PNG of 380 KB decodes to 1.2 GB)."""


# ----------------------------------------------------------------------------------- raw decode


def decode_raw(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    is_bigendian: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode sensor_msgs/Image fields to RGB uint8 (H, W, 3).

    ``step`` is the row length in bytes (>= width * bytes per pixel; padding is skipped).
    ``data`` is any bytes-like object (bytes, bytearray, memoryview, rclpy's array.array('B'),
    a 1-D uint8 ndarray); only its first ``height * step`` bytes are read. rgb8 returns a
    zero-copy view (strided if padded; read-only when ``data`` is bytes), every other encoding
    a new C-contiguous array. 16-bit encodings are reduced to 8 bit by ``>> 8`` (high byte),
    honouring ``is_bigendian``. Bayer: bilinear demosaic; YUV: BT.601 video range (OpenCV).
    Images of more than ``max_pixels`` pixels are refused before anything is allocated.
    """
    enc = _canonical(encoding)
    bpp, family = _LAYOUT[enc]
    height, width, step = _check_dims(enc, height, width, step, bpp)
    check_pixels(width, height, max_pixels, enc)
    if family in _EVEN_WIDTH and width % 2:
        raise CodecError(
            f"{enc} image has odd width {width}: chroma is shared by pixel pairs, so the width "
            "must be even; check the publisher's width field"
        )
    rows = height
    if family == "yuv420sp":
        if height % 2:
            raise CodecError(
                f"{enc} image has odd height {height}: chroma rows are shared by row pairs, so "
                "the height must be even; check the publisher's height field"
            )
        rows = height + height // 2  # Y plane then half-height interleaved chroma plane
    buf = _as_bytes_array(data)
    need = rows * step
    if buf.size < need:
        what = "(height*3/2)*step" if family == "yuv420sp" else "height*step"
        raise CodecError(
            f"image data is {buf.size} bytes but {what} = {need} ({enc}, {width}x{height}, "
            f"step {step}): the message is truncated or step is wrong; check the publisher's "
            "step and height"
        )
    # (rows, width*bpp) byte view: strided when step is padded, never a copy.
    plane = buf[:need].reshape(rows, step)[:, : width * bpp]

    if family == "rgb":
        return plane.reshape(height, width, 3)
    if family == "mono8":
        return cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB)
    if family == "mono16":
        return cv2.cvtColor(_high_bytes(plane, is_bigendian), cv2.COLOR_GRAY2RGB)
    if family in ("bgr", "rgba", "bgra"):
        return cv2.cvtColor(plane.reshape(height, width, bpp), _CV_CODE[enc])
    if family == "yuv422":
        return cv2.cvtColor(plane.reshape(height, width, 2), _CV_CODE[enc])
    # bayer and yuv420sp take the 2-D byte plane as is
    return cv2.cvtColor(plane, _CV_CODE[enc])


def decode_labels(encoding: str, height: int, width: int, step: int, data: Any,
                  is_bigendian: bool = False) -> np.ndarray:
    """Class ids of a label image (mono8 / 8UC1 -> uint8, mono16 / 16UC1 -> uint16 in native
    byte order) as a new (H, W) array: ids are kept, never converted to grey or RGB."""
    dt: np.dtype[Any]
    if encoding in ("mono8", "8UC1"):
        dt = np.dtype(np.uint8)
    elif encoding in ("mono16", "16UC1"):
        dt = np.dtype(">u2" if is_bigendian else "<u2")
    else:
        raise CodecError(f"label image has encoding {encoding!r}: label images must be mono8 or "
                         "mono16 class ids")
    height, width, step = _check_dims(encoding, height, width, step, dt.itemsize)
    buf, need = _as_bytes_array(data), height * step
    if buf.size < need:
        raise CodecError(f"label image holds {buf.size} bytes, expected height*step = {need}")
    rows = buf[:need].reshape(height, step)[:, : width * dt.itemsize]
    return rows.copy().view(dt).astype(dt.newbyteorder("="))


def decode_compressed_labels(fmt: str, data: Any) -> np.ndarray:
    """Class ids of a compressed label image: a single-channel (8 or 16 bit) PNG, kept as is."""
    ids = cv2.imdecode(_as_bytes_array(data), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2:
        raise CodecError(f"label image ({fmt!r}) is not a single-channel PNG: write labels as "
                         "mono8 Image or 'mono8; png compressed mono8'")
    return ids


def mono16_to_mono8(image: np.ndarray) -> np.ndarray:
    """16-bit image (any byte order) -> uint8 by keeping the high byte (``>> 8``), for display."""
    if image.dtype.kind != "u" or image.dtype.itemsize != 2:
        raise CodecError(f"mono16_to_mono8 needs a uint16 array, got {image.dtype}; cast it first")
    return (image >> 8).astype(np.uint8)


def _canonical(encoding: str) -> str:
    if encoding in _LAYOUT:
        return encoding
    found = _LOWER.get(str(encoding).strip().lower())
    if found is not None:
        return found
    hint = ""
    if any(t in str(encoding) for t in ("16", "32", "64", "SC")):
        hint = " (16-bit colour/Bayer, signed and float images are not model input)"
    raise CodecError(
        f"unsupported image encoding {encoding!r}{hint}; publish one of: "
        f"{', '.join(sorted(_LAYOUT))} (or convert upstream, e.g. with image_proc)"
    )


def _check_dims(enc: str, height: int, width: int, step: int, bpp: int) -> tuple[int, int, int]:
    try:
        height, width, step = int(height), int(width), int(step)
    except (TypeError, ValueError) as e:
        raise CodecError(f"height/width/step must be integers: {e}; check the message") from e
    if height <= 0 or width <= 0:
        raise CodecError(
            f"image is {width}x{height} (width x height): an empty image cannot be decoded; "
            "check that the publisher fills height and width"
        )
    if step < width * bpp:
        raise CodecError(
            f"step {step} is smaller than width*{bpp} = {width * bpp} bytes for {enc}: rows would "
            "overlap; check the publisher's step (bytes per row) and encoding"
        )
    return height, width, step


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse an image above ``max_pixels`` (before decoding: the header is enough)."""
    if width * height > max_pixels:
        raise CodecError(
            f"{what} image is {width}x{height} = {width * height / 1e6:.1f} MP, above "
            f"max_input_pixels = {max_pixels / 1e6:.1f} MP: lower the camera resolution, or "
            "raise the max_input_pixels parameter if the robot has the memory"
        )


def _as_bytes_array(data: Any) -> np.ndarray:
    """Flat uint8 view of a bytes-like object (zero-copy for anything with the buffer protocol)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:  # reinterpret the bytes, never convert values
            data = np.ascontiguousarray(data).view(np.uint8)
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    if isinstance(data, (list, tuple)):  # very old rclpy gave lists: slow, but correct
        return np.asarray(data, dtype=np.uint8)
    raise CodecError(
        f"image data of type {type(data).__name__} is not bytes-like; pass msg.data as is "
        "(bytes, bytearray, memoryview, array.array('B') or a uint8 ndarray)"
    )


def _high_bytes(plane: np.ndarray, is_bigendian: bool) -> np.ndarray:
    """(H, 2W) bytes of 16-bit pixels -> contiguous (H, W) high bytes, i.e. each pixel ``>> 8``.

    Picking the byte avoids an unaligned uint16 view (odd steps are legal) and a byteswap.
    """
    pairs = plane.reshape(plane.shape[0], -1, 2)
    return cv2.extractChannel(pairs, 0 if is_bigendian else 1)


# ------------------------------------------------------------------------------------- encode


def encode_raw(array: np.ndarray, encoding: str) -> tuple[int, memoryview]:
    """Encode an array as sensor_msgs/Image ``(step, data)``; step in bytes, rows unpadded.

    mono8/8UC1 and mono16/16UC1 take (H, W) integer labels (range-checked: no silent wrap);
    mono16 is written little-endian (set ``is_bigendian = 0``). rgb8/bgr8 take an RGB uint8
    (H, W, 3) array (bgr8 swaps channels). ``data`` is a flat C-contiguous ``memoryview`` of
    bytes, zero-copy when the input already has the target dtype and layout; see the module
    docstring for assigning it to ``msg.data`` cheaply.
    """
    a = np.asarray(array)
    enc = encoding if encoding in RAW_OUTPUT_ENCODINGS else _LOWER.get(str(encoding).lower())
    if enc not in RAW_OUTPUT_ENCODINGS:
        raise CodecError(
            f"cannot encode to {encoding!r}; encode_raw writes "
            f"{', '.join(sorted(RAW_OUTPUT_ENCODINGS))} (mono8/mono16 for labels, rgb8 for colour)"
        )
    if enc in ("rgb8", "bgr8"):
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise CodecError(
                f"{enc} needs an RGB uint8 array of shape (H, W, 3), got {a.dtype} {a.shape}; "
                "convert with np.clip(...).astype(np.uint8)"
            )
        out = cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if enc == "bgr8" else np.ascontiguousarray(a)
        bpp = 3
    else:
        wide = enc in ("mono16", "16UC1")
        if a.ndim != 2:
            raise CodecError(f"{enc} needs a 2-D (H, W) array, got shape {a.shape}; squeeze it")
        out = _to_labels(a, np.dtype("<u2") if wide else np.dtype(np.uint8), enc)
        bpp = 2 if wide else 1
    if out.size == 0:
        raise CodecError(f"cannot encode an empty {out.shape} array; check the model output")
    return out.shape[1] * bpp, out.data.cast("B")


def _to_labels(a: np.ndarray, dtype: np.dtype, enc: str) -> np.ndarray:
    """Integer labels -> C-contiguous ``dtype``; out-of-range values raise instead of wrapping."""
    if a.dtype == dtype or (a.dtype == np.bool_ and dtype.itemsize == 1):
        return np.ascontiguousarray(a).view(dtype)
    if a.dtype.kind not in "uib":
        raise CodecError(
            f"{enc} needs integer labels, got {a.dtype}; take argmax over classes before encoding"
        )
    if a.size and a.dtype.kind != "b":
        hi = int(np.iinfo(dtype).max)
        lo_v, hi_v = int(a.min()), int(a.max())
        if lo_v < 0 or hi_v > hi:
            fix = "use mono16" if hi == 255 else "remap the label ids"
            raise CodecError(f"label values span [{lo_v}, {hi_v}] but {enc} holds 0..{hi}; {fix}")
    return np.ascontiguousarray(a, dtype=dtype)
