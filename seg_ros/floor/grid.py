"""Label image -> traversable-floor occupancy grid on the ground plane z = 0 of the grid frame.

The geometry (which pixel each grid cell centre sees) depends only on the camera, its pose and
the grid, so it is computed once into a lookup table (``GroundLut``) and rebuilt only when one of
them changes. Per frame the work is two gathers, one scatter over the visible cells and, in
contact mode, one cumulative sum along the viewing rays (seg_ros.floor.rays).

Output follows nav_msgs/OccupancyGrid: int8, row-major, cell (0, 0) at the grid origin (its
lower-left corner in the grid frame), x along columns, y along rows; free 0, occupied 100,
unknown -1. Obstacle modes (``OBSTACLE_MODES``):

- ``contact`` (default): along each viewing ray on the floor, cells are free up to the first
  non-traversable one; that one (where an obstacle stands on the floor) is occupied and every
  cell behind it is unknown (hidden). A box 3 m ahead is occupied at its front face, not smeared
  along the ray behind it.
- ``projected``: every cell takes the class of the pixel that sees its centre, as if everything
  were painted on the floor: an obstacle of height h seen from height H is marked from its foot
  to H / (H - h) times its distance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from seg_ros.errors import ConfigError
from seg_ros.floor.camera import CameraModel, CameraPose
from seg_ros.floor.grid_spec import MAX_CELLS, GridSpec
from seg_ros.floor.rays import (
    depth_first_runs,
    hidden_mask,
    in_range_cells,
    ray_parents,
    side_runs,
)

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
OBSTACLE_MODES = ("contact", "projected")
__all__ = ["FREE", "MAX_CELLS", "OBSTACLE_MODES", "OCCUPIED", "UNKNOWN", "GridSpec", "GroundLut",
           "GroundProjector", "build_lut"]
_CHUNK_CELLS = 1 << 20  # cells projected per OpenCV call while building (bounds memory)


@dataclass(frozen=True, eq=False)
class GroundLut:
    """Which received-image pixel each grid cell centre sees, for one camera, pose and grid.

    Attributes:
        pixel_index: (rows, cols) int32 flat pixel index ``v * image_width + u``, -1 = unknown.
        cells: int32 flat indices of the visible cells (ascending).
        pixels: int32 flat pixel index seen by each of ``cells``.
        ray_pos, ray_end: int32 per visible cell: its place in a depth-first order of the floor
            rays from the camera's foot, and the end of the run of cells it hides
            (seg_ros.floor.rays); ``ray_nodes`` cells in that order.
        side_pos, side_end: (visible cells, 8) int32 runs of each visible cell's side
            neighbours (seg_ros.floor.rays.side_runs).
    """

    camera: CameraModel
    pose: CameraPose
    spec: GridSpec
    pixel_index: np.ndarray
    cells: np.ndarray
    pixels: np.ndarray
    ray_pos: np.ndarray
    ray_end: np.ndarray
    ray_nodes: int
    side_pos: np.ndarray
    side_end: np.ndarray


def build_lut(camera: CameraModel, pose: CameraPose, spec: GridSpec) -> GroundLut:
    """Project every cell centre (z = 0) into the image; keep those in front, in range, inside;
    order the cells in range along their floor rays from the camera's foot.

    Vectorised per block of cells (at most ~1 M cells per OpenCV call).
    """
    t = pose.matrix
    rot, cam = t[:3, :3], t[:3, 3]
    foot = (float(cam[0]), float(cam[1]))
    nodes = in_range_cells(spec, foot)
    w, h = camera.image_width, camera.image_height
    index = np.full(spec.rows * spec.cols, -1, dtype=np.int32)
    for k0 in range(0, nodes.size, _CHUNK_CELLS):
        flat = nodes[k0:k0 + _CHUNK_CELLS]
        rows, cols = np.divmod(flat, spec.cols)
        ground = np.stack([spec.origin_x + (cols + 0.5) * spec.resolution,
                           spec.origin_y + (rows + 0.5) * spec.resolution,
                           np.zeros(flat.size)], axis=1)
        optical = (ground - cam) @ rot  # R^T (p - t), row vectors: grid -> optical frame
        uv = camera.project(optical)
        ok = np.isfinite(uv).all(axis=1)
        flat, uv = flat[ok], uv[ok]
        u = np.floor(uv[:, 0] + 0.5)  # integer coordinates are pixel centres (OpenCV)
        v = np.floor(uv[:, 1] + 0.5)
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        index[flat[inside]] = v[inside].astype(np.int64) * w + u[inside].astype(np.int64)
    cells = np.flatnonzero(index >= 0).astype(np.int32)
    pos, end = depth_first_runs(ray_parents(spec, foot, nodes))
    visible = np.searchsorted(nodes, cells)  # nodes ascend; every visible cell is a node
    side = side_runs(spec, foot, nodes, pos, end, cells)
    return GroundLut(camera, pose, spec, index.reshape(spec.rows, spec.cols), cells,
                     index[cells].copy(), pos[visible], end[visible], int(nodes.size), *side)


class GroundProjector:
    """Turns label images into OccupancyGrid data; rebuilds its LUT only when inputs change.

    Typical node use: ``configure(camera=...)`` on each camera_info, ``configure(pose=...)`` on
    each tf lookup (cheap when unchanged), ``update(labels, traversable)`` on each frame.
    """

    def __init__(self, spec: GridSpec, camera: CameraModel | None = None,
                 pose: CameraPose | None = None, obstacle_mode: str = "contact") -> None:
        self._spec, self._camera, self._pose = spec, camera, pose
        self.obstacle_mode = check_obstacle_mode(obstacle_mode)
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
        if self.obstacle_mode == "contact":
            hidden = hidden_mask(values == OCCUPIED, lut.ray_pos, lut.ray_end, lut.ray_nodes,
                                 lut.side_pos, lut.side_end)
            values[hidden] = UNKNOWN
        if out is None:
            out = self._out
        else:
            if out.shape != self._out.shape or out.dtype != np.int8 or not out.flags.c_contiguous:
                raise ConfigError(f"out must be a C-contiguous int8 array {self._out.shape}, got "
                                  f"{out.dtype} {out.shape}")
            out.fill(UNKNOWN)
        out.reshape(-1)[lut.cells] = values
        return out


def check_obstacle_mode(mode: str) -> str:
    """``mode`` if it is one of OBSTACLE_MODES, else a ConfigError naming them."""
    if mode not in OBSTACLE_MODES:
        raise ConfigError(f"obstacle mode {mode!r} is not one of {', '.join(OBSTACLE_MODES)}: "
                          "contact marks obstacles where they stand (hidden cells unknown), "
                          "projected as if painted on the floor")
    return mode


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else str(shape)
