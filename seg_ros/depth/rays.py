"""Per-pixel viewing rays of a calibrated camera, computed once per CameraInfo.

A depth pixel (u, v) with depth z (metres along the optical axis, REP 118) is the point
``z * (x_n, y_n, 1)`` in the camera optical frame (x right, y down, z forward), where
``(x_n, y_n)`` is the pixel's undistorted normalised coordinate. :class:`RayTable` holds
``x_n`` and ``y_n`` for every pixel of the received image (ROI and binning applied as
:meth:`CameraModel.project` does, so projecting a ray lands back on its pixel), so a cloud is
two multiplications per pixel.

Tables are built in blocks of :data:`CHUNK` pixels, and a depth pixel is projected into the
colour image with the lens model written out (:func:`distort`), not ``cv2.projectPoints``
(whose Jacobian costs ~550 bytes a point): the memory of a build beyond its result is a few MB
at any image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from seg_ros.floor.camera import CameraModel

# Iterative undistortion to 1e-10 in normalised units (OpenCV's default 5 steps stay ~1e-3 off
# for strong wide-angle lenses).
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
CHUNK = 1 << 16  # pixels per block of a table build (~10 MB of float64 temporaries)


@dataclass(frozen=True, eq=False)
class RayTable:
    """Undistorted normalised coordinates of every received-image pixel of ``camera``.

    Attributes:
        camera: the model the table was built from.
        x, y: (height, width) float32, x_n = X / Z and y_n = Y / Z of the pixel centre's ray
            in the optical frame; NaN where the lens model folds over (beyond its max angle).
    """

    camera: CameraModel
    x: np.ndarray
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape  # type: ignore[return-value]

    @staticmethod
    def for_camera(camera: CameraModel) -> RayTable:
        """The table of ``camera``, cached (a few models: registered depth plus colour)."""
        return _build(camera)


@lru_cache(maxsize=8)
def _build(camera: CameraModel) -> RayTable:
    h, w = camera.image_height, camera.image_width
    x, y = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
    rows = max(1, CHUNK // max(w, 1))
    u = np.arange(w, dtype=np.float64) * max(camera.binning_x, 1) + camera.roi.x_offset
    for r0 in range(0, h, rows):  # block by block: the float64 temporaries stay small
        r1 = min(h, r0 + rows)
        # Received image -> full-resolution sensor pixels: the inverse of CameraModel.project.
        v = np.arange(r0, r1, dtype=np.float64) * max(camera.binning_y, 1) + camera.roi.y_offset
        uu, vv = np.meshgrid(u, v)
        xy = normalised(camera, np.stack([uu.ravel(), vv.ravel()], axis=1))
        x[r0:r1] = xy[:, 0].reshape(r1 - r0, w)
        y[r0:r1] = xy[:, 1].reshape(r1 - r0, w)
    for a in (x, y):
        a.setflags(write=False)
    return RayTable(camera, x, y)


def normalised(camera: CameraModel, pixels: np.ndarray) -> np.ndarray:
    """(N, 2) full-sensor pixel coordinates -> (N, 2) undistorted (x_n, y_n); NaN where the
    distortion polynomial is not invertible (beyond ``camera.max_angle``)."""
    pts = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
    k = camera.k_matrix
    if not camera.has_distortion:
        xy = (pts.reshape(-1, 2) - (k[0, 2], k[1, 2])) / (k[0, 0], k[1, 1])
        xy[:, 0] -= k[0, 1] / k[1, 1] * xy[:, 1]  # skew, if any
        return xy
    if camera.distortion_model == "equidistant":
        d = np.array((camera.D + (0.0,) * 4)[:4])
        xy = cv2.fisheye.undistortPoints(pts, k, d, criteria=_CRITERIA).reshape(-1, 2)
    else:
        xy = _undistort(pts, k, np.array(camera.D)).reshape(-1, 2)
    angle = np.arctan(np.hypot(xy[:, 0], xy[:, 1]))
    xy[~(angle < camera.max_angle)] = np.nan
    return xy


def _undistort(pts: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """cv2.undistortPoints to ``_CRITERIA`` (OpenCV 4 names it undistortPointsIter; OpenCV 5
    gives undistortPoints the criteria argument)."""
    iterative = getattr(cv2, "undistortPointsIter", None)
    if iterative is not None:
        return iterative(pts, k, d, None, None, _CRITERIA)
    return cv2.undistortPoints(pts, k, d, criteria=_CRITERIA)


def colour_pixel_map(depth: CameraModel, colour: CameraModel) -> np.ndarray | None:
    """Flat colour-image pixel index seen by each depth pixel, (h, w) int32, -1 = outside.

    For a depth image registered to the colour camera (same optical frame) at another
    resolution or calibration: each depth ray is projected into the colour image and rounded
    to the nearest pixel. None when both models are the same (the identity).
    """
    if depth == colour:
        return None
    return _pixel_map(depth, colour)


@lru_cache(maxsize=8)
def _pixel_map(depth: CameraModel, colour: CameraModel) -> np.ndarray:
    rays = RayTable.for_camera(depth)
    h, w = rays.shape
    index = np.empty((h, w), np.int32)
    rows = max(1, CHUNK // max(w, 1))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        index[r0:r1] = _nearest_pixel(colour, rays.x[r0:r1], rays.y[r0:r1])
    index.setflags(write=False)
    return index


def _nearest_pixel(colour: CameraModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Flat index of the received colour pixel nearest to each ray (x_n, y_n); -1 outside."""
    uv = project_normalised(colour, x.astype(np.float64), y.astype(np.float64))
    with np.errstate(invalid="ignore"):
        u, v = np.floor(uv[0] + 0.5), np.floor(uv[1] + 0.5)
        inside = (u >= 0) & (u < colour.image_width) & (v >= 0) & (v < colour.image_height)
    return np.where(inside, np.where(inside, v, 0) * colour.image_width + np.where(inside, u, 0),
                    -1).astype(np.int32)


def distort(camera: CameraModel, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalised (x_n, y_n) -> distorted normalised coordinates, OpenCV's models
    (plumb_bob / rational_polynomial: k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4]]]; equidistant:
    k1..k4 on the angle), elementwise: no Jacobian, no per-point temporaries beyond a few."""
    d = np.array(camera.D + (0.0,) * 14, np.float64)
    r2 = x * x + y * y
    if camera.distortion_model == "equidistant":
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3]))))
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(r > 1e-12, theta_d / r, 1.0)
        return x * scale, y * scale
    radial = (1 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))) / (1 + r2 * (d[5] + r2 * (d[6]
                                                                                   + r2 * d[7])))
    xy2 = 2 * x * y
    xd = x * radial + d[2] * xy2 + d[3] * (r2 + 2 * x * x) + r2 * (d[8] + r2 * d[9])
    yd = y * radial + d[2] * (r2 + 2 * y * y) + d[3] * xy2 + r2 * (d[10] + r2 * d[11])
    return xd, yd


def project_normalised(camera: CameraModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rays (x_n, y_n) (any shape, float64) -> (2, *shape) received-image pixel (u, v), as
    :meth:`CameraModel.project` gives for the points (x_n, y_n, 1); NaN beyond ``max_angle``.
    A tilted-sensor model (14 coefficients) goes through ``cv2.projectPoints`` block by
    block."""
    k = camera.k_matrix
    if len(camera.D) == 14 and camera.has_distortion and camera.distortion_model != "equidistant":
        pts = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1)
        uv = np.concatenate([camera.project(pts[i:i + 8192])  # its Jacobian: 4 MB a block
                             for i in range(0, len(pts), 8192)] or [np.zeros((0, 2))])
        return uv.T.reshape(2, *x.shape)
    xd, yd = distort(camera, x, y) if camera.has_distortion else (x, y)
    skew = k[0, 1] if camera.distortion_model == "equidistant" else 0.0  # as OpenCV's models
    u = k[0, 0] * xd + skew * yd + k[0, 2]
    v = k[1, 1] * yd + k[1, 2]
    u = (u - camera.roi.x_offset) / max(camera.binning_x, 1)
    v = (v - camera.roi.y_offset) / max(camera.binning_y, 1)
    far = ~(np.arctan(np.hypot(x, y)) < camera.max_angle)  # NaN rays count as far
    u[far] = np.nan
    v[far] = np.nan
    return np.stack([u, v])
