"""seg_ros.codec's raw side: every raw encoding against an independent reference, encode_raw,
label images, every error message, and the zero-copy / cheap-assignment claims (the compressed
side: test_codec_compressed.py)."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from codec_buffers import CONTAINERS, smooth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seg_ros import codec
from seg_ros.codec import (
    ENCODINGS,
    decode_raw,
    encode_raw,
    mono16_to_mono8,
)
from seg_ros.errors import CodecError

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BAYER = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}
# Reference decoders use OpenCV's unambiguous pattern names (>= 4.10), not the codec's old ones.
BAYER_REF = {k: getattr(cv2, f"COLOR_Bayer{v}2RGB") for k, v in BAYER.items()}
UYVY = ("yuv422", "uyvy")
YUYV = ("yuv422_yuy2", "yuyv")
NV = ("nv12", "nv21")


# ------------------------------------------------------------------- forward + reference codecs


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer filter; pattern names the 2x2 block at (0, 0)."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for (dy, dx), ch in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(ch)]
    return out


def _nv(rgb: np.ndarray, vu: bool) -> np.ndarray:
    """RGB -> NV12/NV21 (Y plane then interleaved chroma), via OpenCV's planar I420."""
    h, w = rgb.shape[:2]
    flat = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    q = (h // 2) * (w // 2)
    u = flat[h * w : h * w + q].reshape(h // 2, w // 2)
    v = flat[h * w + q : h * w + 2 * q].reshape(h // 2, w // 2)
    uv = np.stack((v, u) if vu else (u, v), axis=-1).reshape(h // 2, w)
    return np.concatenate([flat[: h * w].reshape(h, w), uv])


def _forward(enc: str, rgb: np.ndarray, big: bool) -> np.ndarray:
    """RGB -> the message's unpadded byte rows (rows, width*bpp) for ``enc``."""
    alpha = (rgb[..., :1] ^ 0x5A).astype(np.uint8)
    if enc == "rgb8":
        px = rgb
    elif enc in ("bgr8", "8UC3"):
        px = rgb[..., ::-1]
    elif enc == "rgba8":
        px = np.concatenate([rgb, alpha], axis=2)
    elif enc in ("bgra8", "8UC4"):
        px = np.concatenate([rgb[..., ::-1], alpha], axis=2)
    elif enc in ("mono8", "8UC1"):
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif enc in ("mono16", "16UC1"):
        v = rgb[..., 0].astype(np.uint16) * 256 + rgb[..., 1]  # every high and low byte varies
        px = v.astype(">u2" if big else "<u2").view(np.uint8)
    elif enc in BAYER:
        px = _mosaic(rgb, BAYER[enc])
    elif enc in UYVY:
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    elif enc in YUYV:
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)
    elif enc in NV:
        return _nv(rgb, vu=enc == "nv21")
    else:
        raise AssertionError(f"no forward conversion for {enc}")
    return np.ascontiguousarray(px).reshape(px.shape[0], -1)


def _reference(enc: str, rows: np.ndarray, h: int, w: int, big: bool) -> np.ndarray:
    """Independent decode of the unpadded rows: NumPy for the lossless ones, OpenCV otherwise."""
    if enc == "rgb8":
        return rows.reshape(h, w, 3)
    if enc in ("bgr8", "8UC3"):
        return rows.reshape(h, w, 3)[..., ::-1]
    if enc == "rgba8":
        return rows.reshape(h, w, 4)[..., :3]
    if enc in ("bgra8", "8UC4"):
        return rows.reshape(h, w, 4)[..., 2::-1]
    if enc in ("mono8", "8UC1"):
        return np.repeat(rows[..., None], 3, axis=2)
    if enc in ("mono16", "16UC1"):
        v = rows.reshape(-1).view(">u2" if big else "<u2").reshape(h, w)
        return np.repeat((v >> 8).astype(np.uint8)[..., None], 3, axis=2)
    if enc in BAYER:
        return cv2.cvtColor(np.ascontiguousarray(rows), BAYER_REF[enc])
    if enc in UYVY:
        return cv2.cvtColor(rows.reshape(h, w, 2), cv2.COLOR_YUV2RGB_UYVY)
    if enc in YUYV:
        return cv2.cvtColor(rows.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUY2)
    if enc in NV:
        code = cv2.COLOR_YUV2RGB_NV21 if enc == "nv21" else cv2.COLOR_YUV2RGB_NV12
        return cv2.cvtColor(rows, code)
    raise AssertionError(f"no reference for {enc}")


def _message(rows: np.ndarray, pad: int, trailing: int = 0) -> tuple[int, bytes]:
    """Byte rows -> (step, data) with ``pad`` junk bytes after every row (what drivers do)."""
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    data = np.concatenate([rows, junk], axis=1).tobytes() + b"\xcd" * trailing
    return rows.shape[1] + pad, data




@st.composite
def raw_case(draw: st.DrawFn, enc: str) -> tuple[np.ndarray, int, bool, int, str]:
    even_w = enc in UYVY + YUYV + NV
    h = draw(st.integers(1, 20)) * 2 if enc in NV else draw(st.integers(1, 40))
    w = draw(st.integers(1, 20)) * 2 if even_w else draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return (
        rgb,
        draw(st.integers(0, 7)),
        draw(st.booleans()),
        draw(st.integers(0, 3)),
        draw(st.sampled_from(sorted(CONTAINERS))),
    )


# ------------------------------------------------------------------------------------ raw decode


def test_encodings_cover_the_brief() -> None:
    assert {
        "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "8UC1", "8UC3", "8UC4",
        "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
        "yuv422", "yuv422_yuy2", "uyvy", "yuyv", "nv12", "nv21",
    } == ENCODINGS  # fmt: skip


@pytest.mark.parametrize("enc", sorted(ENCODINGS))
@FAST
@given(data=st.data())
def test_decode_raw_matches_reference(enc: str, data: st.DataObject) -> None:
    rgb, pad, big, trailing, container = data.draw(raw_case(enc))
    h, w = rgb.shape[:2]
    rows = _forward(enc, rgb, big)
    step, msg = _message(rows, pad, trailing)
    out = decode_raw(enc, h, w, step, CONTAINERS[container](msg), is_bigendian=big)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    np.testing.assert_array_equal(out, _reference(enc, rows, h, w, big))


@pytest.mark.parametrize("enc", sorted(ENCODINGS - {"mono16", "16UC1"}))
def test_flat_colour_decodes_to_itself(enc: str) -> None:
    """Catches swapped Bayer patterns, UYVY/YUYV and NV12/NV21 mix-ups that exact tests miss."""
    colour = np.array([200, 60, 20], np.uint8)  # distinct R, G, B
    rgb = np.broadcast_to(colour, (8, 10, 3)).copy()
    rows = _forward(enc, rgb, False)
    out = decode_raw(enc, 8, 10, rows.shape[1], rows.tobytes())
    gray = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    want = gray if enc in ("mono8", "8UC1") else rgb
    tol = 3 if enc in UYVY + YUYV + NV else 0  # BT.601 integer round trip
    assert np.abs(out.astype(int) - want).max() <= tol, (enc, out[4, 4])


def test_bayer_rggb_red_scene_is_red() -> None:
    red = np.zeros((6, 6, 3), np.uint8)
    red[..., 0] = 255
    out = decode_raw("bayer_rggb8", 6, 6, 6, _mosaic(red, "RGGB").tobytes())
    assert (out[..., 0] == 255).all() and (out[..., 1:] == 0).all()


@pytest.mark.parametrize("big", [False, True])
def test_mono16_scales_by_high_byte_and_honours_endianness(big: bool) -> None:
    v = np.array([[0, 255, 256, 65535, 0x1234]], np.uint16)
    data = v.astype(">u2" if big else "<u2").tobytes()
    out = decode_raw("mono16", 1, 5, 10, data, is_bigendian=big)
    assert out[0, :, 0].tolist() == [0, 0, 1, 255, 0x12]
    assert mono16_to_mono8(v).tolist() == [[0, 0, 1, 255, 0x12]]


def test_mono16_odd_step_is_fine() -> None:
    v = np.array([[0x0100, 0x0200], [0x0300, 0x0400]], "<u2")
    step, data = _message(v.view(np.uint8), pad=1)
    assert decode_raw("16UC1", 2, 2, step, data)[..., 0].tolist() == [[1, 2], [3, 4]]


def test_rgb8_is_zero_copy_view() -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    data = rgb.tobytes()
    out = decode_raw("rgb8", 4, 5, 15, data)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))
    assert not out.flags.writeable  # bytes are immutable: documented read-only view
    np.testing.assert_array_equal(out, rgb)

    msg = array.array("B", data)  # rclpy's type: writable, so the view aliases the message
    out = decode_raw("rgb8", 4, 5, 15, msg)
    assert np.shares_memory(out, np.frombuffer(msg, np.uint8)) and out.flags.writeable


def test_rgb8_padded_step_is_strided_view() -> None:
    rgb = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    step, data = _message(rgb.reshape(3, 12), pad=4)
    buf = bytearray(data)
    out = decode_raw("rgb8", 3, 4, step, buf)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    assert out.strides == (16, 3, 1)
    np.testing.assert_array_equal(out, rgb)


def test_non_rgb_outputs_are_contiguous_copies() -> None:
    data = bytes(range(24))
    out = decode_raw("bgr8", 2, 4, 12, data)
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, np.frombuffer(data, np.uint8))


# ------------------------------------------------------------------------------ raw decode errors


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ("32FC1", 2, 2, 8, bytes(32)),
            r"unsupported image encoding '32FC1'.*not model input.*rgb8",
        ),
        (("jpeg", 2, 2, 6, bytes(12)), r"unsupported image encoding 'jpeg'.*bayer_rggb8.*yuv422"),
        (("rgb8", 0, 2, 6, b""), r"empty image.*height and width"),
        (("rgb8", 2, 0, 6, bytes(12)), r"0x2.*empty image"),
        (("mono8", -1, 2, 2, bytes(4)), r"empty image"),
        (("rgb8", 2, 2, 5, bytes(12)), r"step 5 is smaller than width\*3 = 6.*check the publisher"),
        (("mono16", 2, 3, 5, bytes(12)), r"step 5 is smaller than width\*2 = 6"),
        (("rgb8", 480, 640, 1920, bytes(1000)), r"1000 bytes but height\*step = 921600.*truncated"),
        (("nv12", 4, 4, 4, bytes(16)), r"16 bytes but \(height\*3/2\)\*step = 24.*truncated"),
        (("yuv422", 2, 3, 6, bytes(12)), r"odd width 3.*must be even"),
        (("yuyv", 2, 5, 10, bytes(20)), r"odd width 5"),
        (("nv21", 4, 3, 3, bytes(18)), r"odd width 3"),
        (("nv12", 3, 4, 4, bytes(24)), r"odd height 3.*must be even"),
        (("rgb8", 1, 1, 3, 42), r"not bytes-like.*msg.data"),
        (("rgb8", "x", 1, 3, bytes(3)), r"must be integers"),
    ],
)
def test_decode_raw_errors_name_problem_and_fix(args: tuple, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode_raw(*args)


def test_encoding_case_is_forgiven() -> None:
    assert decode_raw("RGB8", 1, 1, 3, b"\x01\x02\x03").tolist() == [[[1, 2, 3]]]
    assert decode_raw("8uc3", 1, 1, 3, b"\x01\x02\x03").tolist() == [[[3, 2, 1]]]


def test_codec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_raw("rgb8", 1, 1, 3, b"")


# ---------------------------------------------------------------------------------- encode_raw


@FAST
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    enc=st.sampled_from(["mono8", "8UC1", "mono16", "16UC1"]),
    dtype=st.sampled_from(["uint8", "int32", "int64", "uint16"]),
)
def test_encode_raw_labels_round_trip(h: int, w: int, seed: int, enc: str, dtype: str) -> None:
    wide = enc in ("mono16", "16UC1")
    top = 65536 if wide and dtype != "uint8" else 256
    labels = np.random.default_rng(seed).integers(0, top, (h, w)).astype(dtype)
    step, data = encode_raw(labels, enc)
    assert step == w * (2 if wide else 1)
    assert isinstance(data, memoryview) and data.format == "B" and data.c_contiguous
    assert data.nbytes == len(data) == h * step
    back = np.frombuffer(data, "<u2" if wide else np.uint8).reshape(h, w)
    np.testing.assert_array_equal(back, labels)
    # what the node does: one memcpy into rclpy's array.array('B'), then decode it again
    msg_data = array.array("B")
    msg_data.frombytes(data)
    gray = decode_raw(enc, h, w, step, msg_data)[..., 0]
    np.testing.assert_array_equal(gray, (labels >> 8) if wide else labels)


def test_encode_raw_is_zero_copy_for_matching_input() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _, data = encode_raw(labels, "mono8")
    assert np.shares_memory(np.frombuffer(data, np.uint8), labels)
    wide = np.arange(12, dtype="<u2").reshape(3, 4)
    step, data = encode_raw(wide, "mono16")
    assert step == 8 and np.shares_memory(np.frombuffer(data, np.uint8), wide)
    boolean = np.eye(3, dtype=bool)
    assert bytes(encode_raw(boolean, "mono8")[1]) == np.eye(3, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("enc", ["rgb8", "bgr8"])
def test_encode_raw_colour_round_trip(enc: str) -> None:
    rgb = smooth(5, 7)[:, ::-1]  # non-contiguous input gets one copy
    step, data = encode_raw(rgb, enc)
    assert step == 21 and len(data) == 5 * 21 and isinstance(data, memoryview)
    np.testing.assert_array_equal(decode_raw(enc, 5, 7, step, data), rgb)


@pytest.mark.parametrize(
    ("array", "enc", "match"),
    [
        (np.zeros((2, 2), np.uint8), "32FC1", r"cannot encode to '32FC1'.*mono16.*rgb8"),
        (np.array([[0, 256]]), "mono8", r"span \[0, 256\] but mono8 holds 0..255; use mono16"),
        (np.array([[-1, 3]]), "mono16", r"span \[-1, 3\] but mono16 holds 0..65535; remap"),
        (np.zeros((2, 2), np.float32), "mono8", r"needs integer labels, got float32; take argmax"),
        (np.zeros((2, 2, 1), np.uint8), "mono8", r"needs a 2-D \(H, W\) array"),
        (np.zeros((2, 2), np.uint8), "rgb8", r"RGB uint8 array of shape \(H, W, 3\)"),
        (np.zeros((2, 2, 3), np.float32), "bgr8", r"got float32"),
        (np.zeros((0, 4), np.uint8), "mono8", r"empty"),
    ],
)
def test_encode_raw_errors(array: np.ndarray, enc: str, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        encode_raw(array, enc)


def test_codec_imports_neither_rclpy_nor_torch() -> None:
    import subprocess
    import sys

    code = "import sys, seg_ros.codec; print(sorted({'rclpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_label_images_keep_their_class_ids() -> None:
    """mono8 / mono16 (either byte order, padded rows) and single-channel PNG labels come back
    as ids, never as grey or RGB; anything else is refused naming the fix."""
    ids = np.arange(12 * 7, dtype=np.uint16).reshape(7, 12) * 300
    big = np.zeros((7, 26), np.uint8)  # 2 bytes of row padding
    big[:, :24] = ids.astype(">u2").view(np.uint8)
    np.testing.assert_array_equal(codec.decode_labels("mono16", 7, 12, 26, big.tobytes(), True),
                                  ids)
    small = (ids % 256).astype(np.uint8)
    out = codec.decode_labels("mono8", 7, 12, 12, small.tobytes())
    assert out.dtype == np.uint8 and out.shape == (7, 12)
    np.testing.assert_array_equal(out, small)
    fmt, png = codec.encode_compressed(ids, "png")
    np.testing.assert_array_equal(codec.decode_compressed_labels(fmt, png), ids)
    with pytest.raises(codec.CodecError, match="mono8 or mono16"):
        codec.decode_labels("rgb8", 7, 12, 36, bytes(7 * 36))
    with pytest.raises(codec.CodecError, match="expected height\\*step"):
        codec.decode_labels("mono8", 7, 12, 12, bytes(10))
    _fmt, jpeg = codec.encode_compressed(np.zeros((8, 8, 3), np.uint8), "jpeg")
    with pytest.raises(codec.CodecError, match="single-channel PNG"):
        codec.decode_compressed_labels("jpeg", jpeg)
