"""A small ray-traced world for known-truth floor tests (vectorised NumPy, no per-pixel loop).

The world: the floor plane z = 0 painted with class rectangles, and axis-aligned boxes of real
height standing on it. Every received pixel's ray (exact inverse of the lens model, by OpenCV's
iterative undistortion, independent of the projection the grid uses) is cast from the camera
centre; the label is the class of the first thing it meets (sky when nothing). Also the
readers of the nav2 map files (pgm + yaml) `seg-ros floor` and the node's map saver write.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seg_ros.floor import FREE, OCCUPIED, UNKNOWN, CameraModel, CameraPose, GridSpec, Pose2D

SKY, OCC, GRASS, FLOOR, RUG, BOX = 0, 1, 2, 3, 4, 5
TRAVERSABLE = (FLOOR, RUG)


@dataclass(frozen=True)
class Box:
    """An obstacle standing on the floor: x0..x1, y0..y1 (m), height (m), class id."""

    x0: float
    x1: float
    y0: float
    y1: float
    height: float
    cls: int = BOX


@dataclass(frozen=True)
class World:
    """Floor rectangles ((class, x0, x1, y0, y1), later ones paint over; GRASS elsewhere)."""

    floor: tuple[tuple[int, float, float, float, float], ...]
    boxes: tuple[Box, ...] = ()

    def without(self, box: Box) -> World:
        return World(self.floor, tuple(b for b in self.boxes if b != box))


def floor_class(x: np.ndarray, y: np.ndarray, floor: tuple = ()) -> np.ndarray:
    out = np.full(x.shape, GRASS, np.uint8)
    for cls, x0, x1, y0, y1 in floor:
        out[(x >= x0) & (x < x1) & (y >= y0) & (y < y1)] = cls
    return out


@functools.lru_cache(maxsize=8)
def pixel_rays(camera: CameraModel) -> np.ndarray:
    """(H*W, 3) optical-frame rays through the centre of every received pixel (read-only,
    cached per camera: a drive renders many frames with one camera)."""
    h, w = camera.image_height, camera.image_width
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    full = np.stack([u * max(camera.binning_x, 1) + camera.roi.x_offset,
                     v * max(camera.binning_y, 1) + camera.roi.y_offset], -1).reshape(-1, 1, 2)
    k, d = camera.k_matrix, np.array(camera.D)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    if camera.distortion_model == "equidistant":
        n = cv2.fisheye.undistortPoints(full, k, d, criteria=crit)
    elif camera.has_distortion:
        n = _undistort(full, k, d, crit)
    else:
        n = (full - k[:2, 2]) / (k[0, 0], k[1, 1])
    n = n.reshape(-1, 2)
    rays = np.column_stack([n, np.ones(len(n))])
    rays.flags.writeable = False
    return rays


def _undistort(px: np.ndarray, k: np.ndarray, d: np.ndarray, crit: tuple) -> np.ndarray:
    """cv2.undistortPoints with a tight iteration criterion (OpenCV 4: undistortPointsIter)."""
    if hasattr(cv2, "undistortPointsIter"):
        return cv2.undistortPointsIter(px, k, d, None, None, crit)
    return cv2.undistortPoints(px, k, d, None, None, None, crit)


def floor_hits(camera: CameraModel, pose: CameraPose) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) grid-frame hit points of every pixel ray, and the mask of rays that hit z = 0."""
    t = pose.matrix
    rays = pixel_rays(camera) @ t[:3, :3].T
    down = rays[:, 2] < -1e-9
    s = np.where(down, -t[2, 3] / np.where(down, rays[:, 2], -1.0), np.nan)
    return t[:3, 3] + s[:, None] * rays, down


def box_distance(origin: np.ndarray, inv_rays: np.ndarray, box: Box) -> np.ndarray:
    """Ray parameter of the first hit of each ray with ``box`` (slab method), inf = none.
    ``inv_rays``: (3, N) reciprocals of the ray components (a zero component as +-1e300)."""
    lo = (box.x0, box.y0, 0.0)
    hi = (box.x1, box.y1, box.height)
    near = np.full(inv_rays.shape[1], -np.inf)
    far = np.full(inv_rays.shape[1], np.inf)
    for axis in range(3):
        a = (lo[axis] - origin[axis]) * inv_rays[axis]
        b = (hi[axis] - origin[axis]) * inv_rays[axis]
        np.maximum(near, np.minimum(a, b), out=near)
        np.minimum(far, np.maximum(a, b), out=far)
    return np.where((near <= far) & (far > 0), np.maximum(near, 0.0), np.inf)


def inverse(rays: np.ndarray) -> np.ndarray:
    """(3, N) reciprocals of (N, 3) ray components, zero components as +-1e300 (no NaN)."""
    r = rays.T
    return 1.0 / np.where(np.abs(r) < 1e-300, 1e-300, r)


def render(camera: CameraModel, pose: CameraPose, world: World) -> np.ndarray:
    """Label image of ``world`` seen by the camera (uint8, received-image size)."""
    t = pose.matrix
    origin = t[:3, 3]
    rays = pixel_rays(camera) @ t[:3, :3].T
    down = rays[:, 2] < -1e-9
    dist = np.where(down, -origin[2] / np.where(down, rays[:, 2], -1.0), np.inf)
    labels = np.full(len(rays), SKY, np.uint8)
    hit = origin + np.where(down, dist, 0.0)[:, None] * rays
    labels[down] = floor_class(hit[down, 0], hit[down, 1], world.floor)
    inv = inverse(rays)
    for box in world.boxes:
        d = box_distance(origin, inv, box)
        nearer = d < dist
        labels[nearer], dist = box.cls, np.minimum(dist, d)
    return labels.reshape(camera.image_height, camera.image_width)


def footprint(spec: GridSpec, world: World) -> np.ndarray:
    """(rows, cols) bool: cell centre inside a box footprint or on non-traversable floor."""
    xs, ys = spec.cell_centres()
    gx, gy = np.meshgrid(xs, ys)
    out = ~np.isin(floor_class(gx, gy, world.floor), TRAVERSABLE)
    for b in world.boxes:
        out |= (gx >= b.x0) & (gx < b.x1) & (gy >= b.y0) & (gy < b.y1)
    return out


def truth_grid(spec: GridSpec, world: World) -> np.ndarray:
    """Free / occupied of every cell centre (boxes and non-traversable floor occupied)."""
    return np.where(footprint(spec, world), OCCUPIED, FREE).astype(np.int8)


def hidden_cells(spec: GridSpec, world: World, camera_xyz: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: the segment from the camera centre to the cell centre on the floor
    passes through a box (the camera cannot see that floor)."""
    xs, ys = spec.cell_centres()
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    inv = inverse(pts - camera_xyz)
    hidden = np.zeros(len(pts), bool)
    for box in world.boxes:
        hidden |= box_distance(camera_xyz, inv, box) < 1.0 - 1e-9
    return hidden.reshape(gx.shape)


def near(mask: np.ndarray, cells: int) -> np.ndarray:
    """``mask`` grown by ``cells`` cells (square neighbourhood)."""
    k = np.ones((2 * cells + 1, 2 * cells + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def camera_in_world(base: Pose2D, camera: CameraPose) -> CameraPose:
    """The camera's optical pose in the world: the robot's floor frame at ``base`` composed
    with ``camera`` (T_base_optical, as CameraPose.from_xyz_rpy gives it in the base frame)."""
    t = np.eye(4)
    c, s = np.cos(base.yaw), np.sin(base.yaw)
    t[:2, :2] = [[c, -s], [s, c]]
    t[:2, 3] = base.x, base.y
    return CameraPose.from_matrix(t @ camera.matrix)


def with_noise(labels: np.ndarray, fraction: float, cls: int, seed: int) -> np.ndarray:
    """``labels`` with a random ``fraction`` of pixels set to ``cls`` (segmentation errors)."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    out.reshape(-1)[rng.random(labels.size) < fraction] = cls
    return out


# ------------------------------------------------------------------ nav2 map files


def read_pgm(path: Path) -> np.ndarray:
    """The pixels of a binary (P5) 8-bit PGM file, as `seg-ros floor` writes the map."""
    data = path.read_bytes()
    tokens: list[str] = []
    pos = 0
    while len(tokens) < 4:  # magic, width, height, maxval; '#' comments allowed
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        tokens.append(data[pos:end].decode())
        pos = end
    assert tokens[0] == "P5" and tokens[3] == "255"
    w, h = int(tokens[1]), int(tokens[2])
    return np.frombuffer(data[pos + 1:], np.uint8).reshape(h, w)


def nav2_load(meta: dict, img: np.ndarray) -> np.ndarray:
    """nav2 map_server's trinary loader: occ = 1 - shade, thresholds, rows flipped."""
    occ = 1.0 - img / 255.0
    grid = np.full(img.shape, UNKNOWN, np.int8)
    grid[occ > meta["occupied_thresh"]] = OCCUPIED
    grid[occ < meta["free_thresh"]] = FREE
    return grid[::-1]
