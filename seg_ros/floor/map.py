"""The fused floor map: per-frame floor grids accumulated over time in a fixed frame (odom).

Each frame's grid (free 0 / occupied 100 / unknown -1 in the robot's floor frame, see
seg_ros.floor.grid) is laid into the map at the robot's pose at the image stamp: every map cell
whose centre falls on a known grid cell gains ``hit`` log-odds (occupied) or loses ``miss``
(free), clamped to [clamp_min, clamp_max]. Between frames every cell decays toward unknown
(log-odds 0) with a half-life in seconds of stamp time, so a person who walked away or a parked
car that left is forgotten. The window is ``width_m`` x ``height_m`` and, when rolling, follows
the robot: it is re-centred in whole cells once the robot is a quarter of the window off its
centre, keeping what the overlap holds (cell (i, j) of the map is the same place in the fixed
frame before and after).

Output follows nav_msgs/OccupancyGrid and Nav2: 100 where the probability >= occupied_threshold
(lethal), 0 where <= free_threshold, -1 otherwise (unknown, never seen or undecided).
Everything is ROS-free; :class:`PoseBuffer` interpolates the robot's pose at an image stamp,
:func:`checked_pose` refuses a pose no map can use (NaN, inf, beyond any plausible world, a
quaternion far from unit) before it enters the buffer.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from seg_ros.errors import ConfigError
from seg_ros.floor.grid import FREE, OCCUPIED, UNKNOWN
from seg_ros.floor.grid_spec import MAX_CELLS, GridSpec

MAX_WORLD_M = 1e7  # |x|, |y| of any plausible pose (m): UTM northings stay below 1e7
QUATERNION_TOLERANCE = 10e-3  # tf2's: | |q|^2 - 1 | below this is normalised, else refused
JUMP_BACK_S = 1.0  # a stamp this much older than the newest is time going back (tf2_ros's)


@dataclass(frozen=True)
class MapSpec:
    """The fused map's geometry and evidence model.

    Attributes:
        resolution: cell edge (m).
        width_m, height_m: window extent along the fixed frame's x and y (m).
        frame_id: the fixed frame (odom: continuous, the robot moves in it).
        hit, miss: log-odds added per occupied / removed per free observation (> 0).
        clamp_min, clamp_max: log-odds bounds (how sure a cell can get, hence how long a
            change takes to show: from clamp_max, (clamp_max - logit(occupied_threshold)) /
            miss frames of free evidence). With clamp_max < 2 logit(occupied_threshold) (the
            default 1.2 < 1.24) an obstacle nobody sees any more is no longer occupied after
            one half-life.
        half_life_s: seconds (of stamp time) for a cell's log-odds to halve; 0 = no decay.
        occupied_threshold, free_threshold: probabilities for 100 / 0 in the output.
        rolling: the window follows the robot (else it stays where it was set).
    """

    resolution: float = 0.05
    width_m: float = 20.0
    height_m: float = 20.0
    frame_id: str = "odom"
    hit: float = 0.85
    miss: float = 0.4
    clamp_min: float = -2.0
    clamp_max: float = 1.2
    half_life_s: float = 30.0
    occupied_threshold: float = 0.65
    free_threshold: float = 0.35
    rolling: bool = True

    def __post_init__(self) -> None:
        for name in ("resolution", "width_m", "height_m", "hit", "miss"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"map {name}={getattr(self, name)} must be a positive number")
        if not (self.clamp_min < 0 < self.clamp_max):
            raise ConfigError(f"map clamp [{self.clamp_min}, {self.clamp_max}] must hold 0 "
                              "(unknown): clamp_min < 0 < clamp_max")
        if not self.half_life_s >= 0:
            raise ConfigError(f"map half_life={self.half_life_s} s must be >= 0 (0 = no decay)")
        if not 0 < self.free_threshold < 0.5 < self.occupied_threshold < 1:
            raise ConfigError(f"map thresholds free {self.free_threshold} / occupied "
                              f"{self.occupied_threshold} must satisfy 0 < free < 0.5 < "
                              "occupied < 1")
        if not self.frame_id.strip():
            raise ConfigError("map frame is empty: name the fixed frame, e.g. odom")
        if self.cols < 1 or self.rows < 1 or self.cols * self.rows > MAX_CELLS:
            raise ConfigError(f"map of {self.cols} x {self.rows} cells is empty or exceeds "
                              f"{MAX_CELLS:,}: change map resolution / width / height")

    @property
    def cols(self) -> int:
        return round(self.width_m / self.resolution)

    @property
    def rows(self) -> int:
        return round(self.height_m / self.resolution)


@dataclass(frozen=True)
class Pose2D:
    """The robot's floor frame in the fixed frame: x, y (m), yaw (rad, REP 103)."""

    x: float
    y: float
    yaw: float

    @classmethod
    def from_matrix(cls, t: np.ndarray) -> Pose2D:
        """From a 4x4 (or 3x3 rotation + translation) transform: its floor-plane part."""
        t = np.asarray(t, dtype=np.float64)
        return cls(float(t[0, 3]), float(t[1, 3]), math.atan2(t[1, 0], t[0, 0]))

    @classmethod
    def from_quaternion(cls, x: float, y: float, q: tuple[float, float, float, float]) -> Pose2D:
        """From a position and a geometry_msgs (x, y, z, w) quaternion: yaw about z."""
        qx, qy, qz, qw = q
        return cls(float(x), float(y),
                   math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz)))


def checked_pose(x: float, y: float, q: tuple[float, float, float, float]
                 ) -> tuple[Pose2D | None, str]:
    """A position (m) and geometry_msgs (x, y, z, w) quaternion as a Pose2D, or None and why:
    NaN / inf anywhere, |x| or |y| beyond :data:`MAX_WORLD_M`, a quaternion whose squared norm
    is off 1 by :data:`QUATERNION_TOLERANCE` or more (zero included; as tf2 refuses it). One
    within the tolerance is normalised first (tf2 does the same)."""
    for name, v in (("position.x", x), ("position.y", y), ("orientation.x", q[0]),
                    ("orientation.y", q[1]), ("orientation.z", q[2]), ("orientation.w", q[3])):
        if not math.isfinite(v):
            return None, f"{name} is {v}"
    for name, v in (("position.x", x), ("position.y", y)):
        if abs(v) > MAX_WORLD_M:
            return None, (f"{name} = {v:g} m is outside any plausible world "
                          f"(|{name[-1]}| <= {MAX_WORLD_M:g} m)")
    n2 = math.fsum(c * c for c in q)
    if abs(n2 - 1.0) >= QUATERNION_TOLERANCE:
        what = "a zero quaternion" if n2 == 0 else f"not a unit quaternion (|q| = {n2 ** .5:.4g})"
        return None, (f"orientation {tuple(round(c, 4) for c in q)} is {what}; tf2 accepts "
                      f"|q|^2 within {QUATERNION_TOLERANCE:g} of 1")
    n = math.sqrt(n2)
    return Pose2D.from_quaternion(x, y, (q[0] / n, q[1] / n, q[2] / n, q[3] / n)), ""


def pose_problem(pose: Pose2D) -> str:
    """Why the map cannot take ``pose`` ("" = it can): the last guard before cells are indexed
    (a tf pose is not checked on entry as odometry is)."""
    if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.yaw)):
        return f"the pose ({pose.x}, {pose.y}, yaw {pose.yaw}) is not finite"
    if max(abs(pose.x), abs(pose.y)) > MAX_WORLD_M:
        return (f"the pose ({pose.x:g}, {pose.y:g}) m is outside any plausible world "
                f"(|x|, |y| <= {MAX_WORLD_M:g} m)")
    return ""


def local_grid_spec(resolution: float, max_range_m: float,
                    camera: tuple[float, float] = (0.0, 0.0), frame_id: str = "base_footprint"
                    ) -> GridSpec:
    """The per-frame grid a map needs: every cell within ``max_range_m`` of the camera's foot
    at ``camera`` (x, y in the robot's floor frame), i.e. a square of side 2 x range."""
    return GridSpec(resolution, 2 * max_range_m, 2 * max_range_m, camera[0] - max_range_m,
                    camera[1] - max_range_m, max_range_m, frame_id)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class FloorMap:
    """Log-odds floor map in a fixed frame; see the module docstring. Not thread-safe."""

    def __init__(self, spec: MapSpec, origin: tuple[float, float] | None = None) -> None:
        self.spec = spec
        self.logodds = np.zeros((spec.rows, spec.cols), np.float32)
        self._anchor = (0.0, 0.0)  # cells lie on a lattice from here (a given origin off it)
        self._cells = (0, 0)  # window origin in whole cells from the anchor (x, y)
        self._placed = origin is not None
        if origin is not None:
            k = tuple(round(float(o) / spec.resolution) for o in origin)
            if all(abs(kk * spec.resolution - o) < 1e-9 for kk, o in zip(k, origin)):
                self._cells = (k[0], k[1])  # on the lattice: the same cells as a rolling map
            else:
                self._anchor = (float(origin[0]), float(origin[1]))
        self.stamp_s: float | None = None  # stamp of the last fused frame
        self.fused = 0
        self.recentres = 0
        self._l_occ = _logit(spec.occupied_threshold)
        self._l_free = _logit(spec.free_threshold)

    @property
    def origin(self) -> tuple[float, float]:
        """Lower-left corner of the window in the fixed frame (m): OccupancyGrid info.origin."""
        r = self.spec.resolution
        return self._anchor[0] + self._cells[0] * r, self._anchor[1] + self._cells[1] * r

    def centre_on(self, x: float, y: float) -> None:
        """Move the window (whole cells) so that (x, y) is at its centre, keeping the overlap."""
        s = self.spec
        cx = round((x - s.width_m / 2 - self._anchor[0]) / s.resolution)
        cy = round((y - s.height_m / 2 - self._anchor[1]) / s.resolution)
        if not self._placed:
            self._cells, self._placed = (cx, cy), True
            return
        dx, dy = cx - self._cells[0], cy - self._cells[1]
        if dx == 0 and dy == 0:
            return
        old, new = self.logodds, np.zeros_like(self.logodds)
        rows, cols = old.shape
        src_r, dst_r = _overlap(dy, rows)
        src_c, dst_c = _overlap(dx, cols)
        new[dst_r, dst_c] = old[src_r, src_c]
        self.logodds, self._cells = new, (cx, cy)
        self.recentres += 1

    def _follow(self, pose: Pose2D) -> None:
        s = self.spec
        if not self._placed:
            self.centre_on(pose.x, pose.y)
            return
        ox, oy = self.origin
        off_x = abs(pose.x - (ox + s.width_m / 2))
        off_y = abs(pose.y - (oy + s.height_m / 2))
        if s.rolling and (off_x > s.width_m / 4 or off_y > s.height_m / 4):
            self.centre_on(pose.x, pose.y)

    def reset_time(self) -> None:
        """Forget the last stamp (time went back: a simulator reset, a bag loop): the next
        frame starts the decay clock again; the evidence stays."""
        self.stamp_s = None

    def decay_to(self, stamp_s: float) -> None:
        """Decay every cell toward unknown for the stamp time since the last frame."""
        last, hl = self.stamp_s, self.spec.half_life_s
        if last is not None and hl > 0 and stamp_s > last:
            self.logodds *= np.float32(0.5 ** ((stamp_s - last) / hl))
        if last is None or stamp_s > last:
            self.stamp_s = stamp_s

    def fuse(self, grid: np.ndarray, grid_spec: GridSpec, pose: Pose2D, stamp_s: float) -> None:
        """Lay one frame's grid (int8, cells of ``grid_spec`` in the robot's floor frame) into
        the map at ``pose`` (that frame in the fixed frame at the image stamp, seconds)."""
        if why := pose_problem(pose):
            raise ValueError(f"{why}: refuse such poses before fusing (checked_pose)")
        if grid.shape != (grid_spec.rows, grid_spec.cols):
            raise ConfigError(f"grid is {grid.shape}, its spec says {grid_spec.rows} x "
                              f"{grid_spec.cols} cells: pass the grid this spec describes")
        self.decay_to(stamp_s)
        self._follow(pose)
        window = self._footprint(grid_spec, pose)
        if window is None:
            return
        (r0, r1, c0, c1), row, col, inside = window
        values = np.full(row.shape, UNKNOWN, np.int8)
        values[inside] = grid[row[inside], col[inside]]
        s = self.spec
        delta = np.where(values == OCCUPIED, np.float32(s.hit),
                         np.where(values == FREE, np.float32(-s.miss), np.float32(0)))
        sub = self.logodds[r0:r1, c0:c1]
        sub += delta
        np.clip(sub, s.clamp_min, s.clamp_max, out=sub)
        self.fused += 1

    def _footprint(self, g: GridSpec, pose: Pose2D) -> tuple | None:
        """Map cells under the robot's grid: window bounds, the grid row / column each sees."""
        s, (ox, oy) = self.spec, self.origin
        c, si = math.cos(pose.yaw), math.sin(pose.yaw)
        gx = (g.origin_x, g.origin_x + g.width_m)
        gy = (g.origin_y, g.origin_y + g.height_m)
        corners = [(pose.x + c * x - si * y, pose.y + si * x + c * y) for x in gx for y in gy]
        xs, ys = zip(*corners)
        c0 = max(0, math.floor((min(xs) - ox) / s.resolution))
        c1 = min(s.cols, math.ceil((max(xs) - ox) / s.resolution))
        r0 = max(0, math.floor((min(ys) - oy) / s.resolution))
        r1 = min(s.rows, math.ceil((max(ys) - oy) / s.resolution))
        if c0 >= c1 or r0 >= r1:
            return None
        # centres from the anchor and global cell indices: the same floats after a re-centre
        (ax, ay), (kx, ky) = self._anchor, self._cells
        dx = (ax + (np.arange(c0 + kx, c1 + kx) + 0.5) * s.resolution - pose.x)[None, :]
        dy = (ay + (np.arange(r0 + ky, r1 + ky) + 0.5) * s.resolution - pose.y)[:, None]
        # map cell centre -> robot floor frame (R^T (p - t)) -> grid cell
        col = np.floor(((c * dx + si * dy) - g.origin_x) / g.resolution).astype(np.int32)
        row = np.floor(((c * dy - si * dx) - g.origin_y) / g.resolution).astype(np.int32)
        inside = (col >= 0) & (col < g.cols) & (row >= 0) & (row < g.rows)
        return (r0, r1, c0, c1), row, col, inside

    def occupancy(self) -> np.ndarray:
        """int8 (rows, cols) OccupancyGrid data: 100 occupied, 0 free, -1 unknown."""
        out = np.full(self.logodds.shape, UNKNOWN, np.int8)
        out[self.logodds >= self._l_occ] = OCCUPIED
        out[self.logodds <= self._l_free] = FREE
        return out


def _overlap(shift: int, n: int) -> tuple[slice, slice]:
    """(source, destination) slices of an axis of n cells when the window moves by ``shift``."""
    if shift >= 0:
        return slice(min(shift, n), n), slice(0, max(n - shift, 0))
    return slice(0, max(n + shift, 0)), slice(min(-shift, n), n)


class PoseBuffer:
    """The robot's recent poses by stamp (seconds), bounded; the pose at an image stamp.

    Between two poses at most ``2 * max_age_s`` apart the pose is interpolated (position
    linearly, yaw along the shorter arc); past the newest or before the oldest it is held from
    that pose when within ``max_age_s``; otherwise there is none (the frame is not fused).
    """

    def __init__(self, capacity: int = 400) -> None:
        self.capacity = capacity
        self._t: list[float] = []
        self._p: list[Pose2D] = []

    def __len__(self) -> int:
        return len(self._t)

    def add(self, stamp_s: float, pose: Pose2D) -> None:
        k = bisect.bisect_right(self._t, stamp_s)
        self._t.insert(k, stamp_s)
        self._p.insert(k, pose)
        if len(self._t) > self.capacity:
            del self._t[0], self._p[0]

    def clear(self) -> None:
        self._t.clear()
        self._p.clear()

    def drop_after(self, stamp_s: float) -> int:
        """Forget the poses stamped after ``stamp_s`` (left over from before time went back);
        how many."""
        k = bisect.bisect_right(self._t, stamp_s)
        n = len(self._t) - k
        del self._t[k:], self._p[k:]
        return n

    def newest(self) -> float | None:
        return self._t[-1] if self._t else None

    def at(self, stamp_s: float, max_age_s: float) -> Pose2D | None:
        t = self._t
        k = bisect.bisect_left(t, stamp_s)
        if k < len(t) and t[k] == stamp_s:
            return self._p[k]
        if 0 < k < len(t) and t[k] - t[k - 1] <= 2 * max_age_s:
            a, b = self._p[k - 1], self._p[k]
            f = (stamp_s - t[k - 1]) / (t[k] - t[k - 1])
            turn = math.remainder(b.yaw - a.yaw, math.tau)
            return Pose2D(a.x + f * (b.x - a.x), a.y + f * (b.y - a.y),
                          math.remainder(a.yaw + f * turn, math.tau))
        near = [j for j in (k - 1, k) if 0 <= j < len(t) and abs(t[j] - stamp_s) <= max_age_s]
        if near and (k == 0 or k == len(t)):
            return self._p[near[0]]
        return None
