"""Camera intrinsics (sensor_msgs/CameraInfo) and camera pose, ROS-free.

``CameraModel`` projects points in the camera *optical* frame (z forward, x right, y down,
metres) to pixel coordinates of the image actually received: the CameraInfo ROI of the full
sensor, binned, exactly as image_geometry does (``cx' = (cx - roi.x_offset) / binning_x``).
Distortion goes through OpenCV (``projectPoints`` / ``fisheye.projectPoints``).

``CameraPose`` holds T_grid_optical, built from x, y, z, roll, pitch, yaw of the camera *body*
frame (REP 103: x forward, y left, z up; pitch > 0 looks down) or from a tf2 transform.
Both are frozen dataclasses: hashable and comparable, so the grid knows when either changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from seg_ros.errors import ConfigError

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
# Coefficient counts OpenCV accepts per model (plumb_bob 5, rational_polynomial 8; 4 = k1 k2 p1 p2).
_COEFFS = {"plumb_bob": (4, 5, 8), "rational_polynomial": (8, 12, 14), "equidistant": (4,)}

MAX_FOCAL_PX = 1e6     # focal length limit in pixels (a 100 MP telephoto stays far below)
MAX_SIDE_PX = 100_000  # sensor side limit in pixels
MAX_DISTORTION = 1e3   # |coefficient| limit (rational_polynomial denominators reach tens)

# Optical frame axes expressed in the camera body frame (REP 103 -> REP 103 "_optical").
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Roi:
    """sensor_msgs/RegionOfInterest in full-resolution (unbinned) sensor pixels; all 0 = full.

    ``do_rectify`` is kept for equality only: raw-image projection uses the raw ROI, as
    image_geometry's ``rawRoi()`` does.
    """

    x_offset: int = 0
    y_offset: int = 0
    width: int = 0
    height: int = 0
    do_rectify: bool = False


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of one camera as sensor_msgs/CameraInfo states them.

    Attributes:
        width, height: full sensor resolution in pixels (CameraInfo.width / height).
        K: row-major 3x3 intrinsic matrix of the full-resolution raw image (9 floats).
        D: distortion coefficients in OpenCV order (empty = none).
        distortion_model: plumb_bob, rational_polynomial or equidistant (OpenCV fisheye).
        binning_x, binning_y: CameraInfo binning (0 and 1 both mean none).
        roi: the window of the sensor actually sent (``Roi()`` = the full image).

    The label image must be the segmentation of the *raw* image this CameraInfo describes.
    For a rectified image (image_rect), pass ``K = P[:3, :3]`` and ``D = ()`` (monocular R = I).
    """

    width: int
    height: int
    K: tuple[float, ...]
    D: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    binning_x: int = 0
    binning_y: int = 0
    roi: Roi = field(default_factory=Roi)

    def __post_init__(self) -> None:
        # Normalise array-like inputs into hashable tuples, then validate.
        k = tuple(float(v) for v in np.asarray(self.K, dtype=np.float64).ravel())
        object.__setattr__(self, "K", k)
        object.__setattr__(self, "D", tuple(float(v) for v in np.asarray(self.D).ravel()))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "binning_x", int(self.binning_x))
        object.__setattr__(self, "binning_y", int(self.binning_y))
        if self.distortion_model == "" and not any(self.D):
            object.__setattr__(self, "distortion_model", "plumb_bob")
        self._validate()

    def _validate(self) -> None:
        if len(self.K) != 9:
            raise ConfigError(f"camera_info K has {len(self.K)} values, expected 9 (row-major 3x3)")
        if not any(self.K):
            raise ConfigError(
                "camera_info K is all zeros: the camera is uncalibrated; calibrate it with "
                "camera_calibration or publish a calibrated camera_info"
            )
        if not all(math.isfinite(v) for v in self.K + self.D):
            raise ConfigError(f"camera_info K {list(self.K)} / D {list(self.D)} holds NaN or "
                              "inf: the calibration is broken; recalibrate or fix the driver")
        if not (0 < self.K[0] <= MAX_FOCAL_PX and 0 < self.K[4] <= MAX_FOCAL_PX):
            raise ConfigError(f"camera_info K has fx={self.K[0]:g}, fy={self.K[4]:g}: both must be "
                              f"in (0, {MAX_FOCAL_PX:g}] pixels; check the camera calibration")
        if self.width <= 0 or self.height <= 0 or max(self.width, self.height) > MAX_SIDE_PX:
            raise ConfigError(f"camera_info size {self.width}x{self.height} is empty or absurd: "
                              "publish the calibrated image width and height")
        self._validate_sanity()
        if self.distortion_model not in DISTORTION_MODELS:
            raise ConfigError(f"distortion_model {self.distortion_model!r} is not supported: use "
                              f"one of {', '.join(DISTORTION_MODELS)}")
        if self.D and any(self.D) and len(self.D) not in _COEFFS[self.distortion_model]:
            raise ConfigError(f"{self.distortion_model} needs {_COEFFS[self.distortion_model]} "
                              f"distortion coefficients, camera_info D has {len(self.D)}")
        if self.binning_x < 0 or self.binning_y < 0:
            raise ConfigError(f"binning {self.binning_x}x{self.binning_y} is negative")
        r = self.roi
        if (r.width or r.height) and (
            r.x_offset + r.width > self.width or r.y_offset + r.height > self.height
        ):
            raise ConfigError(f"camera_info roi {r} exceeds the {self.width}x{self.height} "
                                  "sensor: fix the roi or the camera_info size")
        if not (r.width or r.height) and (r.x_offset or r.y_offset):
            raise ConfigError(f"camera_info roi has offset ({r.x_offset}, {r.y_offset}) but no "
                              "size: give the roi's width and height, or all zeros for the full "
                              "image")
        if self.binning_x > self.width or self.binning_y > self.height:
            raise ConfigError(f"binning {self.binning_x}x{self.binning_y} exceeds the "
                              f"{self.width}x{self.height} sensor: check the camera_info")

    def _validate_sanity(self) -> None:
        """Finite but absurd values: a principal point far off the sensor, a wrong last row of
        K, distortion coefficients no lens has (they fold the image onto itself)."""
        cx, cy = self.K[2], self.K[5]
        if not (-self.width <= cx <= 2 * self.width and -self.height <= cy <= 2 * self.height):
            raise ConfigError(f"camera_info principal point ({cx:g}, {cy:g}) lies far outside the "
                              f"{self.width}x{self.height} sensor: check the calibration")
        if max(abs(a - b) for a, b in zip(self.K[6:], (0.0, 0.0, 1.0))) > 1e-6:
            raise ConfigError(f"camera_info K's last row is {list(self.K[6:])}, not [0, 0, 1]: "
                              "K must be the 3x3 intrinsic matrix, row-major")
        if any(abs(d) > MAX_DISTORTION for d in self.D):
            raise ConfigError(f"camera_info D {list(self.D)} has a coefficient beyond "
                              f"+-{MAX_DISTORTION:g}: no real lens; check the calibration")

    # ----------------------------------------------------------------------- constructors

    @classmethod
    def from_camera_info_fields(
        cls,
        width: int,
        height: int,
        k: Sequence[float],
        d: Sequence[float] = (),
        distortion_model: str = "plumb_bob",
        binning_x: int = 0,
        binning_y: int = 0,
        roi: Roi | Sequence[Any] = (0, 0, 0, 0, False),
    ) -> CameraModel:
        """From CameraInfo fields; ``roi`` = (x_offset, y_offset, width, height, do_rectify)."""
        if not isinstance(roi, Roi):
            x, y, w, h = (int(v) for v in roi[:4])
            roi = Roi(x, y, w, h, bool(roi[4]) if len(roi) > 4 else False)
        return cls(width, height, tuple(k), tuple(d), distortion_model, binning_x, binning_y, roi)

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """From a sensor_msgs/msg/CameraInfo (duck-typed: no rclpy import here)."""
        r = msg.roi
        return cls.from_camera_info_fields(
            msg.width, msg.height, msg.k, msg.d, msg.distortion_model, msg.binning_x,
            msg.binning_y, (r.x_offset, r.y_offset, r.width, r.height, r.do_rectify))

    @classmethod
    def from_yaml(cls, path: str | Path) -> CameraModel:
        """From the YAML camera_calibration / camera_info_manager writes (full image, no ROI)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"camera info file {path} does not exist: check the path")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML ({e}): re-save it from camera_calibration"
                              ) from None

        def need(key: str) -> Any:
            if not isinstance(doc, dict) or key not in doc:
                raise ConfigError(f"{path} has no {key!r}: it is not a camera_calibration YAML "
                                  "(image_width, image_height, camera_matrix, ...)")
            return doc[key]

        k = need("camera_matrix")
        k = k["data"] if isinstance(k, dict) else k
        d = doc.get("distortion_coefficients") or {}
        d = d.get("data", []) if isinstance(d, dict) else d
        return cls(int(need("image_width")), int(need("image_height")), tuple(k), tuple(d or ()),
                   str(doc.get("distortion_model") or "plumb_bob"))

    # ----------------------------------------------------------------------- geometry

    @property
    def image_width(self) -> int:
        """Width in pixels of the image actually received (ROI, binned)."""
        return (self.roi.width or self.width) // max(self.binning_x, 1)

    @property
    def image_height(self) -> int:
        """Height in pixels of the image actually received (ROI, binned)."""
        return (self.roi.height or self.height) // max(self.binning_y, 1)

    @property
    def k_matrix(self) -> np.ndarray:
        return np.array(self.K, dtype=np.float64).reshape(3, 3)

    @property
    def has_distortion(self) -> bool:
        return any(self.D)

    @cached_property
    def max_angle(self) -> float:
        """Largest angle (rad) from the optical axis where the radial distortion is monotonic.

        Beyond it the polynomial folds back and OpenCV would map far-off-axis points into the
        image; they are refused instead.
        """
        theta = np.linspace(0.0, math.radians(89.9), 4000)
        d = np.array(self.D + (0.0,) * 8)
        if not self.has_distortion:
            return float(theta[-1])
        if self.distortion_model == "equidistant":
            t2 = theta * theta
            rd = theta * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3]))))
        else:
            r = np.tan(theta)
            r2 = r * r
            num = 1 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))
            den = 1 + r2 * (d[5] + r2 * (d[6] + r2 * d[7]))
            rd = r * num / den
        bad = np.flatnonzero((np.diff(rd) <= 0) | (rd[1:] <= 0))
        return float(theta[bad[0]] if bad.size else theta[-1])

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame (m) -> (N, 2) pixel (u, v) in the received image.

        Pixel centres are integers (OpenCV convention). Points behind the camera or beyond
        ``max_angle`` give NaN.
        """
        p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        out = np.full((p.shape[0], 2), np.nan)
        lateral = np.hypot(p[:, 0], p[:, 1])
        ok = (p[:, 2] > 1e-9) & (np.arctan2(lateral, p[:, 2]) < self.max_angle)
        if not ok.any():
            return out
        pts = p[ok].reshape(-1, 1, 3)
        zero = np.zeros(3)
        if self.distortion_model == "equidistant":
            d4 = np.array((self.D + (0.0,) * 4)[:4])
            uv, _ = cv2.fisheye.projectPoints(pts, zero, zero, self.k_matrix, d4)
        else:
            uv, _ = cv2.projectPoints(pts, zero, zero, self.k_matrix,
                                      np.array(self.D) if self.has_distortion else None)
        uv = uv.reshape(-1, 2)
        # Full-resolution sensor pixels -> received image (ROI, then binning), as image_geometry.
        uv[:, 0] = (uv[:, 0] - self.roi.x_offset) / max(self.binning_x, 1)
        uv[:, 1] = (uv[:, 1] - self.roi.y_offset) / max(self.binning_y, 1)
        out[ok] = uv
        return out


# ------------------------------------------------------------------------------- pose


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), fixed axes, as tf2 ``setRPY`` (radians)."""
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a (x, y, z, w) quaternion (geometry_msgs order), normalised first."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n < 1e-12:
        raise ConfigError("transform rotation quaternion is all zeros: publish a valid tf")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass(frozen=True)
class CameraPose:
    """Pose of the camera *optical* frame in the grid frame: T_grid_optical, 16 floats.

    Rounded to 1e-9 so that float noise in a republished static tf does not rebuild the grid.
    """

    T_grid_optical: tuple[float, ...]

    def __post_init__(self) -> None:
        t = np.asarray(self.T_grid_optical, dtype=np.float64)
        if t.size != 16:
            raise ConfigError(f"camera pose has {t.size} values, expected a 4x4 transform")
        t = t.reshape(4, 4)
        r = t[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ConfigError("camera pose rotation is not a rotation matrix: pass a rigid 4x4 "
                              "transform (orthonormal, det +1)")
        if not np.allclose(t[3], (0, 0, 0, 1)):
            raise ConfigError(f"camera pose last row is {t[3].tolist()}, expected [0, 0, 0, 1]")
        if t[2, 3] <= 0:
            raise ConfigError(
                f"camera is at z={t[2, 3]:.3f} m in the grid frame, at or under the ground "
                "plane z=0: give the camera height above the floor as z > 0 (check the pose "
                "or the tf from the grid frame to the camera)")
        object.__setattr__(self, "T_grid_optical", tuple(round(float(v), 9) for v in t.ravel()))

    @property
    def matrix(self) -> np.ndarray:
        """T_grid_optical as a 4x4 array: p_grid = T @ p_optical."""
        return np.array(self.T_grid_optical).reshape(4, 4)

    @classmethod
    def from_xyz_rpy(cls, x: float, y: float, z: float, roll: float, pitch: float,
                     yaw: float) -> CameraPose:
        """Camera *body* frame pose (m, rad; REP 103, pitch > 0 looks down) in the grid frame."""
        t = np.eye(4)
        t[:3, :3] = rpy_matrix(roll, pitch, yaw)
        t[:3, 3] = (x, y, z)
        return cls.from_matrix(t, frame="body")

    @classmethod
    def from_matrix(cls, transform: np.ndarray,
                    frame: Literal["optical", "body"] = "optical") -> CameraPose:
        """From a 4x4 transform that maps camera points into the grid frame.

        ``frame="optical"``: T_grid_optical, i.e. tf2 ``lookup_transform(grid_frame,
        <camera>_optical_frame, t)`` (the image's header.frame_id). ``frame="body"``:
        T_grid_camera_body (x forward, z up, e.g. ``camera_link``); the optical rotation is added.
        """
        t = np.array(transform, dtype=np.float64).reshape(4, 4)
        if frame == "body":
            t[:3, :3] = t[:3, :3] @ R_BODY_OPTICAL
        elif frame != "optical":
            raise ConfigError(f"pose frame {frame!r} is neither 'optical' nor 'body'")
        return cls(tuple(t.ravel()))

    @classmethod
    def from_translation_quaternion(
        cls, translation: Sequence[float], quaternion: Sequence[float],
        frame: Literal["optical", "body"] = "optical",
    ) -> CameraPose:
        """From a geometry_msgs/Transform: translation (x, y, z) m, rotation (x, y, z, w)."""
        t = np.eye(4)
        t[:3, :3] = quaternion_matrix(*quaternion)
        t[:3, 3] = translation
        return cls.from_matrix(t, frame)
