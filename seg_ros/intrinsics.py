"""Intrinsics of an output image whose size differs from the camera image (ROS-free).

A 3D mapper that fuses a segmentation mask (nvblox) needs the mask's own camera_info. The
camera's CameraInfo describes the full sensor; the image actually received is its ROI, binned.
:func:`scaled_intrinsics` gives K and P of that received image resized to the output size, with
the pixel-centre convention (pixel u covers [u - 0.5, u + 0.5]; a resize by s maps centre u to
(u + 0.5) s - 0.5), so the ray through any output pixel is the ray through the same point of
the camera image. Distortion coefficients act on normalised coordinates and stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seg_ros.errors import ConfigError


@dataclass(frozen=True)
class Intrinsics:
    """K (3x3) and P (3x4), row-major, of an image of ``width`` x ``height`` pixels."""

    width: int
    height: int
    k: tuple[float, ...]
    p: tuple[float, ...]


def parse_output_size(value: str) -> str | tuple[int, int]:
    """'input', 'model' or 'WxH' (pixels) -> 'input' / 'model' / (width, height)."""
    text = str(value).strip().lower()
    if text in ("input", "model"):
        return text
    w, sep, h = text.partition("x")
    if sep and w.isdigit() and h.isdigit() and 0 < int(w) <= 16384 and 0 < int(h) <= 16384:
        return int(w), int(h)
    raise ConfigError(f"output_size {value!r} is not 'input', 'model' or WxH (e.g. 640x480, "
                      "each side 1..16384): give one of those")


def received_intrinsics(width: int, height: int, k: Sequence[float], p: Sequence[float],
                        binning: tuple[int, int] = (0, 0),
                        roi: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Intrinsics:
    """Intrinsics of the image actually sent: the ROI ``(x, y, w, h)`` of the sensor, binned
    (0 and 1 mean no binning), as image_geometry computes them."""
    bx, by = max(binning[0], 1), max(binning[1], 1)
    x0, y0, rw, rh = roi
    out_w, out_h = (rw or width) // bx, (rh or height) // by
    return Intrinsics(out_w, out_h, _shift_scale(k, 3, x0, y0, 1 / bx, 1 / by),
                      _shift_scale(p, 4, x0, y0, 1 / bx, 1 / by))


def scaled_intrinsics(src: Intrinsics, width: int, height: int) -> Intrinsics:
    """``src`` resized to ``width`` x ``height`` pixels (pixel-centre convention)."""
    sx, sy = width / src.width, height / src.height
    return Intrinsics(width, height, _resize(src.k, 3, sx, sy), _resize(src.p, 4, sx, sy))


def _shift_scale(m: Sequence[float], cols: int, x0: float, y0: float, sx: float,
                 sy: float) -> tuple[float, ...]:
    """Crop by (x0, y0) then scale by (sx, sy) with binning's corner convention."""
    rows = [list(map(float, m[r * cols:(r + 1) * cols])) for r in range(3)]
    rows[0] = [(a - x0 * c) * sx for a, c in zip(rows[0], rows[2])]
    rows[1] = [(a - y0 * c) * sy for a, c in zip(rows[1], rows[2])]
    return tuple(v for row in rows for v in row)


def _resize(m: Sequence[float], cols: int, sx: float, sy: float) -> tuple[float, ...]:
    """u' = (u + 0.5) sx - 0.5 applied to a projection matrix's first two rows."""
    rows = [list(map(float, m[r * cols:(r + 1) * cols])) for r in range(3)]
    rows[0] = [a * sx + (0.5 * sx - 0.5) * c for a, c in zip(rows[0], rows[2])]
    rows[1] = [a * sy + (0.5 * sy - 0.5) * c for a, c in zip(rows[1], rows[2])]
    return tuple(v for row in rows for v in row)
