"""Per-pixel viewing rays of a calibrated camera, computed once per CameraInfo.

A depth pixel (u, v) with depth z (metres along the optical axis, REP 118) is the point
``z * (x_n, y_n, 1)`` in the camera optical frame (x right, y down, z forward), where
``(x_n, y_n)`` is the pixel's undistorted normalised coordinate. :class:`RayTable` holds
``x_n`` and ``y_n`` for every pixel of the received image (ROI and binning applied as
:meth:`CameraModel.project` does, so projecting a ray lands back on its pixel), so a cloud is
two multiplications per pixel.
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


@lru_cache(maxsize=4)
def _build(camera: CameraModel) -> RayTable:
    h, w = camera.image_height, camera.image_width
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    # Received image -> full-resolution sensor pixels: the inverse of CameraModel.project.
    u_full = u * max(camera.binning_x, 1) + camera.roi.x_offset
    v_full = v * max(camera.binning_y, 1) + camera.roi.y_offset
    xy = normalised(camera, np.stack([u_full.ravel(), v_full.ravel()], axis=1))
    x, y = (xy[:, i].reshape(h, w).astype(np.float32) for i in (0, 1))
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


@lru_cache(maxsize=4)
def _pixel_map(depth: CameraModel, colour: CameraModel) -> np.ndarray:
    rays = RayTable.for_camera(depth)
    pts = np.stack([rays.x.ravel(), rays.y.ravel(), np.ones(rays.x.size)], axis=1)
    uv = colour.project(pts.astype(np.float64))
    index = np.full(rays.x.size, -1, np.int32)
    ok = np.isfinite(uv).all(axis=1)
    u = np.floor(uv[ok, 0] + 0.5)
    v = np.floor(uv[ok, 1] + 0.5)
    w, h = colour.image_width, colour.image_height
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    flat = np.flatnonzero(ok)[inside]
    index[flat] = (v[inside] * w + u[inside]).astype(np.int32)
    index = index.reshape(rays.shape)
    index.setflags(write=False)
    return index
