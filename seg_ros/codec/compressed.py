"""CompressedImage (JPEG / PNG) <-> NumPy arrays: sizes read from the header before any
decoding, strict JPEG decoding with libjpeg-turbo where simplejpeg is installed."""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from seg_ros.codec.raw import DEFAULT_MAX_PIXELS, _as_bytes_array, check_pixels
from seg_ros.errors import CodecError

try:  # libjpeg-turbo with strict mode: corrupt data is an error, not a warning on stderr
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the install; OpenCV decodes instead
    simplejpeg = None

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
