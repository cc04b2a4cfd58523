"""Depth points -> floor-grid cells (free / occupied / unknown), ROS-free.

Rules, with every height measured from the floor plane z = 0 of the grid frame (z up):

* a point of a traversable class within ``floor_tolerance`` of the floor is free floor;
* a point of any class between ``min_obstacle_height`` and ``max_obstacle_height`` is an
  obstacle at its own x-y position (a table top above ``max_obstacle_height`` is not, its legs
  are); a non-traversable class lying on the floor (water, a rug labelled so) is occupied too;
* the ray of every point at or below ``max_obstacle_height`` clears the cells it crosses up to
  (not including) its hit, as Nav2's obstacle layer does, but never past the nearest obstacle
  point in its bearing: a ray that passes over a low obstacle proves nothing about the floor
  behind it (that floor is free only where its own points are seen). Points above
  ``max_obstacle_height`` neither mark nor clear (ceilings, overhangs above the robot);
* occupied beats free within a frame; cells no ray reaches stay unknown.

Ray clearing is done in polar form: the rays' bearings from the camera are binned (about 1.5
sampled pixel columns per bin), each bin keeps the longest horizontal range of its rays and the
shortest range of its obstacle points, and a cell is cleared when it lies closer than both in
its bin. All geometry that depends only on the camera, its pose, the grid and the stride is
computed once in :class:`DepthGridMarker`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from seg_ros.depth.rays import RayTable
from seg_ros.errors import ConfigError
from seg_ros.floor.camera import CameraPose
from seg_ros.floor.grid import FREE, OCCUPIED, UNKNOWN, GridSpec, GroundLut


@dataclass(frozen=True)
class MarkingSettings:
    """Heights in metres above the floor plane; ``stride`` in pixels (every stride-th row and
    column of the depth image is used for the grid)."""

    floor_tolerance: float = 0.05
    min_obstacle_height: float = 0.1
    max_obstacle_height: float = 1.5
    stride: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.floor_tolerance < self.min_obstacle_height < self.max_obstacle_height:
            raise ConfigError(
                f"depth heights must satisfy 0 <= floor_tolerance ({self.floor_tolerance:g}) < "
                f"min_obstacle_height ({self.min_obstacle_height:g}) < max_obstacle_height "
                f"({self.max_obstacle_height:g}) metres: fix depth.floor_tolerance / "
                "depth.min_obstacle_height / depth.max_obstacle_height")
        if not 1 <= int(self.stride) <= 64:
            raise ConfigError(f"depth.grid_stride {self.stride} must be 1..64 pixels")


class DepthGridMarker:
    """Marks one grid from one depth frame; built per (rays, pose, grid, settings).

    The sampled pixels are kept sorted by bearing bin, so the per-bin longest ray and nearest
    obstacle are two ``reduceat`` calls on contiguous runs.

    Args:
        spec: the grid (frame on the floor, z up).
        pose: T_grid_optical of the depth camera.
        rays: the depth camera's ray table.
        settings: heights and stride.
        label_index: flat colour pixel per depth pixel (-1 = none), or None when the labels
            are at the depth resolution (registered pixel for pixel).
    """

    def __init__(self, spec: GridSpec, pose: CameraPose, rays: RayTable,
                 settings: MarkingSettings, label_index: np.ndarray | None = None) -> None:
        self.spec, self.pose, self.rays, self.settings = spec, pose, rays, settings
        s = int(settings.stride)
        h, w = rays.shape
        flat = (np.arange(0, h, s)[:, None] * w + np.arange(0, w, s)[None, :]).ravel()
        ray = np.stack([rays.x.ravel()[flat], rays.y.ravel()[flat], np.ones(flat.size)], 1)
        good = np.isfinite(ray).all(axis=1)
        t = pose.matrix
        d = ray @ t[:3, :3].T  # grid-frame ray per metre of depth
        bearing = np.arctan2(d[:, 1], d[:, 0])
        self.bin_width = _bin_width(np.where(good, bearing, np.nan), w, s)
        self.n_bins = math.ceil(2 * math.pi / self.bin_width)
        bins = self._bin(bearing[good])
        order = np.argsort(bins, kind="stable")
        self.pixels = flat[good][order].astype(np.intp)
        index = self.pixels if label_index is None else label_index.ravel()[self.pixels]
        self.labelled = index >= 0
        self.label_pixels = np.maximum(index, 0).astype(np.intp)
        d = d[good][order].astype(np.float32)
        self.dx, self.dy, self.dz = (np.ascontiguousarray(d[:, i]) for i in range(3))
        self.origin = t[:3, 3].astype(np.float32)
        self.reach = np.hypot(self.dx, self.dy)  # horizontal metres per metre of depth
        self.bins_present, self.bin_starts = np.unique(bins[order], return_index=True)
        self._geometry_of_cells(t[0, 3], t[1, 3])

    def _geometry_of_cells(self, cam_x: float, cam_y: float) -> None:
        """Range from the camera's foot and bearing bin of every in-range cell centre."""
        spec = self.spec
        xs, ys = spec.cell_centres()
        gx, gy = np.meshgrid(xs - cam_x, ys - cam_y)
        dist = np.hypot(gx, gy).ravel()
        self.cells_in_range = np.flatnonzero(dist <= spec.max_range_m)
        # a cell is cleared when its centre lies half a cell before the limit of its bin
        self.cell_reach = (dist[self.cells_in_range] + 0.5 * spec.resolution).astype(np.float32)
        self.cell_bin = self._bin(np.arctan2(gy, gx).ravel()[self.cells_in_range])
        self.inv_res = np.float32(1.0 / spec.resolution)
        self._scratch = np.empty(spec.rows * spec.cols + 1, np.int8)

    def _bin(self, bearing: np.ndarray) -> np.ndarray:
        b = np.floor((bearing + math.pi) / self.bin_width).astype(np.intp)
        return np.minimum(b, self.n_bins - 1)

    def update(self, depth_m: np.ndarray, labels: np.ndarray, traversable: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
        """(rows, cols) int8 grid from one frame: free 0, occupied 100, unknown -1.

        Args:
            depth_m: (h, w) float32 metres of the depth camera, NaN = no return.
            labels: class ids of the colour image (pixel-for-pixel, or via ``label_index``).
            traversable: bool per class id (length > the largest label).
            out: optional int8 (rows, cols) array to fill.
        """
        spec, st = self.spec, self.settings
        if depth_m.shape != self.rays.shape:
            raise ConfigError(f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]}, its ray "
                              f"table {self.rays.shape[1]}x{self.rays.shape[0]}: publish the "
                              "depth image's camera_info")
        z = depth_m.reshape(-1)[self.pixels]
        height = self.origin[2] + self.dz * z
        horizontal = self.reach * z
        ok = (height <= st.max_obstacle_height) & (horizontal <= spec.max_range_m)
        trav = np.take(traversable, labels.reshape(-1)[self.label_pixels]) & self.labelled
        near_floor = np.abs(height) <= st.floor_tolerance
        obstacle = ok & ((height >= st.min_obstacle_height)
                         | (near_floor & ~trav & self.labelled))
        grid = self._scratch  # one spare cell at the end takes the points outside the grid
        grid.fill(UNKNOWN)
        grid[self._cleared(horizontal, ok, obstacle)] = FREE
        cell = self._cells(z, ok)
        grid[cell[near_floor & trav]] = FREE
        grid[cell[obstacle]] = OCCUPIED
        if out is None:
            out = np.empty((spec.rows, spec.cols), np.int8)
        out.reshape(-1)[:] = grid[:-1]
        return out

    def _cleared(self, horizontal: np.ndarray, ok: np.ndarray, obstacle: np.ndarray
                 ) -> np.ndarray:
        """Cells closer than the longest clearing ray and the nearest obstacle of their bin."""
        longest = np.maximum.reduceat(np.where(ok, horizontal, 0), self.bin_starts)
        nearest = np.minimum.reduceat(np.where(obstacle, horizontal, np.inf), self.bin_starts)
        limit = np.zeros(self.n_bins, np.float32)
        limit[self.bins_present] = np.minimum(longest, nearest)
        return self.cells_in_range[self.cell_reach < limit[self.cell_bin]]

    def _cells(self, z: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Flat cell index of each point; the spare cell (rows * cols) outside the grid or
        not ``ok``."""
        spec = self.spec
        col = np.floor((self.origin[0] - spec.origin_x + self.dx * z) * self.inv_res)
        row = np.floor((self.origin[1] - spec.origin_y + self.dy * z) * self.inv_res)
        inside = ok & (col >= 0) & (col < spec.cols) & (row >= 0) & (row < spec.rows)
        return np.where(inside, row * spec.cols + col, spec.rows * spec.cols).astype(np.intp)


def _bin_width(bearing: np.ndarray, width: int, stride: int) -> float:
    """Angular bin (rad) = 1.5 x the median bearing step between neighbouring sampled columns
    (``bearing`` of every sampled pixel, row-major, NaN where the ray is invalid)."""
    per_row = bearing.reshape(-1, -(-width // stride))
    step = np.abs(np.diff(np.unwrap(per_row, axis=1), axis=1))
    pitch = float(np.nanmedian(step)) if np.isfinite(step).any() else 0.01
    return max(1.5 * pitch, 1e-4)


def fill_from_flat(out: np.ndarray, flat: np.ndarray, lut: GroundLut,
                   depth_m: np.ndarray) -> np.ndarray:
    """Where the depth grid is unknown and the flat grid's pixel had no depth return, take the
    flat-floor value (the fallback for pixels without depth). ``lut`` is the flat grid's table
    (colour pixels); a depth image of another size is scaled to the colour image first."""
    h, w = lut.camera.image_height, lut.camera.image_width
    missing = ~np.isfinite(depth_m)
    if missing.shape != (h, w):
        missing = cv2.resize(missing.view(np.uint8), (w, h),
                             interpolation=cv2.INTER_NEAREST).astype(bool)
    take = lut.cells[missing.reshape(-1)[lut.pixels]]
    grid, src = out.reshape(-1), flat.reshape(-1)
    take = take[grid[take] == UNKNOWN]
    grid[take] = src[take]
    return out
