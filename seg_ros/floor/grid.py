"""Label image -> traversable-floor occupancy grid on the ground plane z = 0 of the grid frame.

The geometry (which pixel each grid cell centre sees) depends only on the camera, its pose and
the grid, so it is computed once into a lookup table (``GroundLut``) and rebuilt only when one of
them changes. Per frame the work is two gathers and one scatter over the visible cells.

Output follows nav_msgs/OccupancyGrid: int8, row-major, cell (0, 0) at the grid origin (its
lower-left corner in the grid frame), x along columns, y along rows; free 0, occupied 100,
unknown -1. A flat-ground assumption: obstacles standing up from the floor are seen as the
floor point behind them, which is non-traversable only if they are labelled so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from seg_ros.errors import ConfigError
from seg_ros.floor.camera import CameraModel, CameraPose

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
MAX_CELLS = 4_000_000  # e.g. 100 m x 100 m at 5 cm: ~50 MB per lookup table, 4 MB per message
_CHUNK_CELLS = 1 << 20  # cells projected per OpenCV call while building (bounds memory)


@dataclass(frozen=True)
class GridSpec:
    """Geometry of the grid, all in metres in ``frame_id`` (a frame on the floor, z up).

    Attributes:
        resolution: cell edge (m/cell).
        width_m, height_m: extent along x (columns) and y (rows); rounded to whole cells.
        origin_x, origin_y: lower-left corner of cell (0, 0) (OccupancyGrid info.origin).
        max_range_m: cells farther than this horizontally from the camera stay unknown
            (far pixels cover large floor areas and the flat-floor error grows with range).
        frame_id: the grid frame; base_footprint keeps the camera pose, hence the LUT, fixed.
    """

    resolution: float = 0.05
    width_m: float = 10.0
    height_m: float = 10.0
    origin_x: float = 0.0
    origin_y: float = -5.0
    max_range_m: float = 8.0
    frame_id: str = "base_footprint"

    def __post_init__(self) -> None:
        for name in ("resolution", "width_m", "height_m", "origin_x", "origin_y", "max_range_m"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("resolution", "width_m", "height_m", "max_range_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"grid {name}={value} must be a positive number of metres")
        if self.cols < 1 or self.rows < 1:
            raise ConfigError(f"grid {self.width_m} x {self.height_m} m is smaller than one "
                              f"{self.resolution} m cell: enlarge it or refine the resolution")
        if self.cols * self.rows > MAX_CELLS:
            raise ConfigError(
                f"grid of {self.cols} x {self.rows} = {self.cols * self.rows:,} cells exceeds "
                f"{MAX_CELLS:,}: coarsen the resolution ({self.resolution} m) or shrink the "
                f"grid ({self.width_m} x {self.height_m} m)")

    @property
    def cols(self) -> int:
        """Cells along x (OccupancyGrid info.width)."""
        return round(self.width_m / self.resolution)

    @property
    def rows(self) -> int:
        """Cells along y (OccupancyGrid info.height)."""
        return round(self.height_m / self.resolution)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x of each column centre, y of each row centre) in metres in the grid frame."""
        xs = self.origin_x + (np.arange(self.cols) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.rows) + 0.5) * self.resolution
        return xs, ys


@dataclass(frozen=True, eq=False)
class GroundLut:
    """Which received-image pixel each grid cell centre sees, for one camera, pose and grid.

    Attributes:
        pixel_index: (rows, cols) int32 flat pixel index ``v * image_width + u``, -1 = unknown.
        cells: int32 flat indices of the visible cells (ascending).
        pixels: int32 flat pixel index seen by each of ``cells``.
    """

    camera: CameraModel
    pose: CameraPose
    spec: GridSpec
    pixel_index: np.ndarray
    cells: np.ndarray
    pixels: np.ndarray


def build_lut(camera: CameraModel, pose: CameraPose, spec: GridSpec) -> GroundLut:
    """Project every cell centre (z = 0) into the image; keep those in front, in range, inside.

    Vectorised per block of rows (at most ~1 M cells per OpenCV call).
    """
    t = pose.matrix
    rot, cam = t[:3, :3], t[:3, 3]
    xs, ys = spec.cell_centres()
    w, h = camera.image_width, camera.image_height
    index = np.full(spec.rows * spec.cols, -1, dtype=np.int32)
    step = max(1, _CHUNK_CELLS // spec.cols)
    for r0 in range(0, spec.rows, step):
        gx, gy = np.meshgrid(xs, ys[r0:r0 + step])
        flat = np.flatnonzero((gx - cam[0]) ** 2 + (gy - cam[1]) ** 2 <= spec.max_range_m ** 2)
        if flat.size == 0:
            continue
        ground = np.stack([gx.ravel()[flat], gy.ravel()[flat], np.zeros(flat.size)], axis=1)
        optical = (ground - cam) @ rot  # R^T (p - t), row vectors: grid -> optical frame
        uv = camera.project(optical)
        ok = np.isfinite(uv).all(axis=1)
        flat, uv = flat[ok], uv[ok]
        u = np.floor(uv[:, 0] + 0.5)  # integer coordinates are pixel centres (OpenCV)
        v = np.floor(uv[:, 1] + 0.5)
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        pix = v[inside].astype(np.int64) * w + u[inside].astype(np.int64)
        index[r0 * spec.cols + flat[inside]] = pix
    cells = np.flatnonzero(index >= 0).astype(np.int32)
    return GroundLut(camera, pose, spec, index.reshape(spec.rows, spec.cols), cells,
                     index[cells].copy())


class GroundProjector:
    """Turns label images into OccupancyGrid data; rebuilds its LUT only when inputs change.

    Typical node use: ``configure(camera=...)`` on each camera_info, ``configure(pose=...)`` on
    each tf lookup (cheap when unchanged), ``update(labels, traversable)`` on each frame.
    """

    def __init__(self, spec: GridSpec, camera: CameraModel | None = None,
                 pose: CameraPose | None = None) -> None:
        self._spec, self._camera, self._pose = spec, camera, pose
        self._lut: GroundLut | None = None
        self._out = np.empty(0, np.int8)
        self._class_key: tuple[frozenset[int], int] | None = None
        self._class_lut = np.empty(0, np.int8)
        self.builds = 0  # how many times the LUT was built (tests, diagnostics)

    @property
    def spec(self) -> GridSpec:
        return self._spec

    def configure(self, *, camera: CameraModel | None = None, pose: CameraPose | None = None,
                  spec: GridSpec | None = None) -> None:
        """Set any of camera / pose / grid; the LUT is dropped only if a value really changed."""
        if camera is not None and camera != self._camera:
            self._camera, self._lut = camera, None
        if pose is not None and pose != self._pose:
            self._pose, self._lut = pose, None
        if spec is not None and spec != self._spec:
            self._spec, self._lut = spec, None

    @property
    def lut(self) -> GroundLut:
        """The current lookup table, built now if the camera, pose or grid changed."""
        if self._lut is None:
            if self._camera is None or self._pose is None:
                missing = "camera" if self._camera is None else "pose"
                raise ConfigError(f"floor grid has no {missing} yet: call configure({missing}=...)"
                                  " before update() (wait for camera_info and the tf)")
            self._lut = build_lut(self._camera, self._pose, self._spec)
            self._out = np.full((self._spec.rows, self._spec.cols), UNKNOWN, np.int8)
            self.builds += 1
        return self._lut

    def use_lut(self, lut: GroundLut) -> None:
        """Take a table built elsewhere (seg_ros.floor.lut_cache: built beside the worker)."""
        if lut is not self._lut:
            self._camera, self._pose, self._spec, self._lut = lut.camera, lut.pose, lut.spec, lut
            if self._out.shape != (lut.spec.rows, lut.spec.cols):
                self._out = np.full((lut.spec.rows, lut.spec.cols), UNKNOWN, np.int8)

    def _classes(self, traversable: Iterable[int], bins: int) -> np.ndarray:
        """class id -> FREE / OCCUPIED, cached for the last traversable set."""
        key = (frozenset(int(c) for c in traversable), bins)
        if key != self._class_key:
            if any(c < 0 for c in key[0]):
                raise ConfigError(f"traversable class ids {sorted(key[0])} include a negative id")
            table = np.full(bins, OCCUPIED, np.int8)
            table[[c for c in key[0] if c < bins]] = FREE
            self._class_key, self._class_lut = key, table
        return self._class_lut

    def update(self, labels: np.ndarray, traversable: Iterable[int],
               confidence: np.ndarray | None = None, min_confidence: int = 0,
               out: np.ndarray | None = None) -> np.ndarray:
        """Grid for one label image: (rows, cols) int8, free 0 / occupied 100 / unknown -1.

        Args:
            labels: (H, W) uint8 or uint16 class ids, the size of the received image.
            traversable: class ids the robot may drive on.
            confidence: optional (H, W) per-pixel confidence (uint8 0..255).
            min_confidence: cells whose pixel is below it stay unknown.
            out: optional (rows, cols) int8 array to fill. Without it an internal buffer is
                returned, overwritten by the next call: copy it if you keep it.
        """
        lut = self.lut
        cam = lut.camera
        if labels.shape != (cam.image_height, cam.image_width):
            raise ConfigError(
                f"label image is {_size(labels.shape)} but the camera image is "
                f"{cam.image_width}x{cam.image_height} (camera_info size, ROI and binning): "
                "segment the image this camera_info describes, at its resolution")
        if labels.dtype not in (np.uint8, np.uint16):
            raise ConfigError(f"labels are {labels.dtype}: pass uint8 or uint16 class ids")
        table = self._classes(traversable, 256 if labels.dtype == np.uint8 else 65536)
        values = table[labels.reshape(-1)[lut.pixels]]
        if confidence is not None and min_confidence > 0:
            if confidence.shape != labels.shape:
                raise ConfigError(f"confidence is {_size(confidence.shape)}, labels are "
                                  f"{_size(labels.shape)}: pass the confidence of this frame")
            values[confidence.reshape(-1)[lut.pixels] < min_confidence] = UNKNOWN
        if out is None:
            out = self._out
        else:
            if out.shape != self._out.shape or out.dtype != np.int8 or not out.flags.c_contiguous:
                raise ConfigError(f"out must be a C-contiguous int8 array {self._out.shape}, got "
                                  f"{out.dtype} {out.shape}")
            out.fill(UNKNOWN)
        out.reshape(-1)[lut.cells] = values
        return out


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else str(shape)
