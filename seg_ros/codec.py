"""ROS-free image codec: sensor_msgs/Image and CompressedImage fields <-> NumPy arrays.

Everything decodes to RGB uint8 of shape (H, W, 3), the layout the segmentation model eats.
Pure NumPy + OpenCV, no rclpy and no torch, so it is testable and benchmarkable anywhere.

Memory notes (they matter to callers):

* ``decode_raw('rgb8', ...)`` returns a *view* of ``data`` (no copy); with a padded ``step`` the
  view is strided (row stride = step). If ``data`` is ``bytes`` the view is read-only; if it is
  rclpy's ``array.array('B')`` the view is writable and aliases the message. Copy it before
  modifying it in place or handing it to ``torch.from_numpy`` (which warns on read-only arrays).
* Every other encoding returns a fresh C-contiguous array.
* ``encode_raw`` returns a flat ``memoryview`` of bytes (format ``'B'``), zero-copy when the
  input already has the target dtype and layout. rclpy's ``uint8[]`` setter only skips its
  per-byte Python check for ``array.array('B')``; build one with ``a = array.array('B');
  a.frombytes(data)`` (a single memcpy) and assign that.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from seg_ros.errors import CodecError

try:  # libjpeg-turbo with strict mode: corrupt data is an error, not a warning on stderr
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the install; OpenCV decodes instead
    simplejpeg = None

__all__ = [
    "COMPRESSED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "ENCODINGS",
    "RAW_OUTPUT_ENCODINGS",
    "CodecError",
    "compressed_size",
    "decode_compressed",
    "decode_raw",
    "encode_compressed",
    "encode_raw",
    "mono16_to_mono8",
]

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

COMPRESSED_FORMATS: frozenset[str] = frozenset({"jpeg", "png"})
"""Codecs :func:`decode_compressed` / :func:`encode_compressed` handle."""

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_EOI = b"\xff\xd9"
_DEPTH_HEADER = 12  # compressed_depth_image_transport ConfigHeader: int32 format + float32[2]
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.11: decode straight to RGB
# Camera frames are what the sensor sent: an EXIF orientation tag must not rotate the labels.
_IMREAD_JPEG = (cv2.IMREAD_COLOR if _IMREAD_RGB is None else _IMREAD_RGB) | getattr(
    cv2, "IMREAD_IGNORE_ORIENTATION", 128)
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


# ---------------------------------------------------------------------------- compressed decode


def decode_compressed(fmt: str, data: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode CompressedImage ``format``/``data`` (JPEG or PNG) to RGB uint8 (H, W, 3).

    ``fmt`` is what image_transport writes ('jpeg', 'png', 'bgr8; jpeg compressed bgr8',
    'mono8; png compressed mono8', '16UC1; compressedDepth png', ...). The codec is taken from
    the data's magic bytes, so a wrong or empty codec name still decodes; the part before ';'
    is ignored because compressed_image_transport always stores BGR/mono in the file.
    16-bit PNGs are reduced with ``>> 8``; alpha is dropped. The size is read from the header
    and checked against ``max_pixels`` before decoding; EXIF orientation is ignored (a camera
    frame is what the sensor sent); a JPEG whose decoder reports corrupt data is refused.
    """
    fmt_l = (fmt or "").lower()
    codec_part = fmt_l.split(";", 1)[-1]
    if "compresseddepth" in codec_part and fmt_l.split(";", 1)[0].strip() == "32fc1":
        raise CodecError(
            "format '32FC1; compressedDepth' holds quantised inverse depth, not an image; "
            "subscribe to a colour topic or decode depth with compressed_depth_image_transport"
        )
    if fmt_l and not any(k in codec_part for k in ("jpeg", "jpg", "png")):
        raise CodecError(
            f"unsupported CompressedImage format {fmt!r}: only JPEG and PNG are decoded; "
            "republish with image_transport's 'compressed' plugin (format jpeg or png)"
        )
    buf = _as_bytes_array(data)
    if buf.size == 0:
        raise CodecError(
            f"CompressedImage ({fmt!r}) has no data: nothing to decode; check the publisher"
        )
    head = buf[:8].tobytes()
    if not head.startswith((_JPEG_MAGIC, _PNG_MAGIC)) and buf[12:20].tobytes() == _PNG_MAGIC:
        buf = buf[_DEPTH_HEADER:]  # compressedDepth: 12-byte ConfigHeader before the PNG
        head = _PNG_MAGIC
    if head.startswith((_JPEG_MAGIC, _PNG_MAGIC)):
        kind = "JPEG" if head.startswith(_JPEG_MAGIC) else "PNG"
        w, h = compressed_size(buf, fmt)
        check_pixels(w, h, max_pixels, kind)
        return _decode_jpeg(buf, fmt) if kind == "JPEG" else _decode_png(buf, fmt)
    raise CodecError(
        f"CompressedImage ({fmt!r}, {buf.size} bytes) is neither JPEG nor PNG (starts with "
        f"{head[:4].hex()}): the data is corrupt or in another codec; check the publisher"
    )


def compressed_size(buf: np.ndarray, fmt: str = "") -> tuple[int, int]:
    """(width, height) from a JPEG or PNG header, without decoding. Raises CodecError."""
    if buf[:8].tobytes() == _PNG_MAGIC:
        if buf.size < 24 or buf[12:16].tobytes() != b"IHDR":
            raise _corrupt("PNG", fmt, buf.size)
        return struct.unpack(">II", buf[16:24].tobytes())  # IHDR: width, height (big-endian)
    if simplejpeg is not None:
        try:
            h, w, _colour, _sub = simplejpeg.decode_jpeg_header(buf)
            return int(w), int(h)
        except ValueError:
            raise _corrupt("JPEG", fmt, buf.size) from None
    return _jpeg_sof_size(buf, fmt)


def _jpeg_sof_size(buf: np.ndarray, fmt: str) -> tuple[int, int]:
    """(width, height) from the first SOFn marker (when simplejpeg is not installed)."""
    data = buf.tobytes()
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise _corrupt("JPEG", fmt, buf.size)


def _decode_jpeg(buf: np.ndarray, fmt: str) -> np.ndarray:
    # libjpeg "decodes" a truncated stream (grey-fills the rest) with only a warning, so check
    # for the End-Of-Image marker ourselves; tolerate zero padding after it.
    tail = buf[-4096:].tobytes().rstrip(b"\x00")
    if not tail.endswith(_JPEG_EOI):
        raise CodecError(
            f"JPEG ({fmt!r}, {buf.size} bytes) has no end-of-image marker: the data is truncated; "
            "check the transport (message size limits, best-effort QoS fragments)"
        )
    if simplejpeg is not None and not _is_cmyk(buf):
        try:
            return simplejpeg.decode_jpeg(buf, colorspace="RGB", strict=True)
        except ValueError as e:  # strict: libjpeg's "Corrupt JPEG data" warnings too
            raise CodecError(f"JPEG ({fmt!r}, {buf.size} bytes) is corrupt ({e}): check the "
                             "publisher and the transport") from None
    img = cv2.imdecode(buf, _IMREAD_JPEG)
    if img is None:
        raise _corrupt("JPEG", fmt, buf.size)
    return img if _IMREAD_RGB is not None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_cmyk(buf: np.ndarray) -> bool:
    """CMYK / YCCK JPEGs (libjpeg-turbo cannot give RGB from them): OpenCV decodes those."""
    try:
        return simplejpeg.decode_jpeg_header(buf)[2] in ("CMYK", "YCCK")
    except ValueError:
        return False


def _decode_png(buf: np.ndarray, fmt: str) -> np.ndarray:
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # keeps 16 bit and alpha for us to handle
    if img is None:
        raise _corrupt("PNG", fmt, buf.size)
    if img.dtype == np.uint16:
        img = np.right_shift(img, 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise CodecError(f"PNG ({fmt!r}) decoded to {img.dtype}: only 8/16-bit PNGs are supported")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def _corrupt(kind: str, fmt: str, size: int) -> CodecError:
    return CodecError(
        f"{kind} ({fmt!r}, {size} bytes) could not be decoded: the data is corrupt or truncated; "
        "check the publisher and the transport"
    )


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


def encode_compressed(array: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """Encode an RGB (H, W, 3) uint8 or mono (H, W) uint8/uint16 array as JPEG or PNG.

    Returns ``(format, data)`` with format as compressed_image_transport writes it, e.g.
    'rgb8; jpeg compressed bgr8' or 'mono16; png compressed mono16', so image_transport
    subscribers and rviz decode it. ``quality`` is the JPEG quality 1..100 (ignored for PNG).
    """
    codec = str(fmt).lower().strip().lstrip(".")
    codec = {"jpg": "jpeg"}.get(codec, codec)
    if codec not in COMPRESSED_FORMATS:
        raise CodecError(f"cannot compress to {fmt!r}; use 'jpeg' (lossy) or 'png' (lossless)")
    a = np.asarray(array)
    colour = a.ndim == 3 and a.shape[2] == 3
    if not (colour or a.ndim == 2) or a.dtype not in (np.uint8, np.uint16) or a.size == 0:
        raise CodecError(
            f"cannot compress a {a.dtype} {a.shape} array: pass RGB uint8 (H, W, 3) or mono "
            "(H, W) uint8/uint16"
        )
    if colour and a.dtype != np.uint8:
        raise CodecError("colour images must be uint8 RGB; scale 16-bit colour to 8 bit first")
    if codec == "jpeg" and a.dtype != np.uint8:
        raise CodecError("JPEG is 8-bit only: a uint16 image needs fmt='png' (lossless 16 bit)")
    if not 1 <= int(quality) <= 100:
        raise CodecError(f"JPEG quality {quality} is out of range; use 1..100 (90 is typical)")
    bits = 8 * a.dtype.itemsize
    if colour:
        src, target = cv2.cvtColor(a, cv2.COLOR_RGB2BGR), f"bgr{bits}"
        original = "rgb8"
    else:
        src, target, original = a, f"mono{bits}", f"mono{bits}"
    if codec == "jpeg":
        ok, out = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, out = cv2.imencode(".png", src, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # speed over size
    if not ok:
        raise CodecError(f"OpenCV failed to encode a {a.shape} image as {codec}")
    return f"{original}; {codec} compressed {target}", out.tobytes()
