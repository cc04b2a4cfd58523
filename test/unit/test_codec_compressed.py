"""seg_ros.codec's compressed side: PNG / JPEG round trips, image_transport's format strings,
every error message, the size cap read from the header before decoding, EXIF left alone."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from codec_buffers import CONTAINERS, smooth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seg_ros.codec import decode_compressed, decode_raw, encode_compressed
from seg_ros.errors import CodecError

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------ compressed


@FAST
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    container=st.sampled_from(sorted(CONTAINERS)),
)
def test_png_round_trip_is_exact(h: int, w: int, seed: int, container: str) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    fmt, data = encode_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8" and isinstance(data, bytes)
    np.testing.assert_array_equal(decode_compressed(fmt, CONTAINERS[container](data)), rgb)


def test_jpeg_round_trip_within_tolerance() -> None:
    rgb = smooth()
    fmt, data = encode_compressed(rgb, "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8"
    err = np.abs(decode_compressed(fmt, data).astype(int) - rgb)
    assert err.mean() < 2.0 and err.max() < 40
    # quality matters: a low quality file is smaller
    assert len(encode_compressed(rgb, "jpeg", quality=20)[1]) < len(data)


def test_mono_formats_match_compressed_image_transport() -> None:
    labels = (np.arange(12 * 16).reshape(12, 16) % 7).astype(np.uint8) * 30
    fmt, data = encode_compressed(labels, "png")
    assert fmt == "mono8; png compressed mono8"
    np.testing.assert_array_equal(decode_compressed(fmt, data), np.repeat(labels[..., None], 3, 2))
    assert encode_compressed(labels, "jpg")[0] == "mono8; jpeg compressed mono8"
    depth = np.array([[0, 256, 65535]], np.uint16)
    fmt, data = encode_compressed(depth, "png")
    assert fmt == "mono16; png compressed mono16"
    assert decode_compressed(fmt, data)[0, :, 0].tolist() == [0, 1, 255]


@pytest.mark.parametrize(
    "fmt",
    ["jpeg", "png", "", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8",
     "bgr8; png compressed bgr8", "mono8; jpeg compressed mono8", "JPEG"],
)  # fmt: skip
def test_image_transport_format_strings_decode(fmt: str) -> None:
    """The codec comes from the magic bytes, so the string only has to not contradict it."""
    rgb = smooth(16, 24)
    codec = "png" if "png" in fmt else "jpeg"
    src = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if fmt.startswith("mono8") else rgb
    _, data = encode_compressed(src, codec)
    out = decode_compressed(fmt, data)
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    want = np.repeat(src[..., None], 3, 2) if src.ndim == 2 else src
    assert np.abs(out.astype(int) - want).mean() < 3


def test_png_with_alpha_and_compressed_depth_header() -> None:
    rgba = np.dstack([smooth(8, 8), np.full((8, 8), 7, np.uint8)])
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes()), rgba[..., :3])
    depth = np.array([[1000, 2000]], np.uint16)
    ok, png = cv2.imencode(".png", depth)
    header = struct.pack("<iff", 1, 0.0, 0.0)  # compressed_depth_image_transport ConfigHeader
    out = decode_compressed("16UC1; compressedDepth png", header + png.tobytes())
    assert out[0, :, 0].tolist() == [1000 >> 8, 2000 >> 8]


def _jpeg() -> bytes:
    return encode_compressed(smooth(), "jpeg")[1]


def _png() -> bytes:
    return encode_compressed(smooth(), "png")[1]


def _corrupt_jpeg() -> bytes:
    data = bytearray(_jpeg())
    data[20:-2] = b"\x00" * (len(data) - 22)  # headers gone, markers kept
    return bytes(data)


@pytest.mark.parametrize(
    ("fmt", "data", "match"),
    [
        ("jpeg", b"", r"has no data.*check the publisher"),
        ("jpeg", lambda: _jpeg()[:-200], r"no end-of-image.*truncated"),
        ("jpeg", lambda: _jpeg()[:300], r"truncated"),
        ("jpeg", _corrupt_jpeg, r"JPEG .*could not be decoded.*corrupt"),
        ("png", lambda: _png()[:-20], r"PNG .*corrupt or truncated"),
        ("png", lambda: _png()[:100], r"PNG .*corrupt or truncated"),
        ("jpeg", b"hello world, not an image", r"neither JPEG nor PNG.*corrupt"),
        ("h264", b"\x00\x00\x00\x01", r"unsupported CompressedImage format 'h264'.*jpeg or png"),
        ("32FC1; compressedDepth", b"\x00" * 40, r"inverse depth"),
    ],
)  # fmt: skip
def test_decode_compressed_errors(fmt: str, data: object, match: str) -> None:
    payload = data() if callable(data) else data
    with pytest.raises(CodecError, match=match):
        decode_compressed(fmt, payload)


@pytest.mark.parametrize(
    ("array", "kw", "match"),
    [
        (np.zeros((4, 4), np.uint16), {"fmt": "jpeg"}, r"JPEG is 8-bit only.*png"),
        (np.zeros((4, 4, 3), np.uint8), {"fmt": "webp"}, r"cannot compress to 'webp'.*png"),
        (np.zeros((4, 4, 3), np.uint8), {"quality": 0}, r"quality 0 is out of range; use 1..100"),
        (np.zeros((4, 4, 2), np.uint8), {}, r"cannot compress a uint8 \(4, 4, 2\).*RGB uint8"),
        (np.zeros((4, 4), np.float32), {}, r"float32.*mono"),
        (np.zeros((4, 4, 3), np.uint16), {"fmt": "png"}, r"colour images must be uint8"),
    ],
)
def test_encode_compressed_errors(array: np.ndarray, kw: dict, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        encode_compressed(array, **kw)


# ------------------------------------------------------------ size cap, corruption, EXIF


def test_size_cap_reads_the_header_before_decoding() -> None:
    """A 20000x20000 PNG of ~400 KB is refused from its IHDR; nothing is decoded."""
    import tracemalloc

    from cases.hostile_images import png_bomb

    bomb = png_bomb()
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=r"20000x20000 = 400.0 MP, above max_input_pixels"):
            decode_compressed("png", bomb)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    with pytest.raises(CodecError, match="above max_input_pixels"):
        decode_raw("rgb8", 40000, 40000, 120000, bytes(16))
    assert decode_compressed("png", bomb[:0] + _png_of(8, 6), max_pixels=48).shape == (6, 8, 3)
    with pytest.raises(CodecError, match="above max_input_pixels"):
        decode_compressed("png", _png_of(8, 6), max_pixels=47)


def _png_of(w: int, h: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


def test_jpeg_size_cap_corrupt_data_and_exif_orientation() -> None:
    from cases.hostile_images import corrupt_jpeg, jpeg

    rgb = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8),
                           (0, 0), 2)
    with pytest.raises(CodecError, match="64x48 = 0.0 MP, above max_input_pixels"):
        decode_compressed("jpeg", jpeg(rgb), max_pixels=64 * 48 - 1)
    with pytest.raises(CodecError, match="corrupt"):
        decode_compressed("jpeg", corrupt_jpeg(rgb))
    rotated_tag = decode_compressed("jpeg", jpeg(rgb, exif_orientation=6))
    assert rotated_tag.shape == (48, 64, 3)  # as the sensor sent it, not rotated
    assert np.abs(rotated_tag.astype(int) - decode_compressed("jpeg", jpeg(rgb))).max() == 0


