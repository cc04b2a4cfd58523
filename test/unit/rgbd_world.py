"""A ray-traced RGB-D world with known truth: floor, boxes, a table whose top overhangs free
floor, a ramp. Small and vectorised (every pixel's ray against every solid at once).

World = grid frame: floor z = 0, z up, metres. Every solid is convex, given as half-spaces
``n . p <= c``; a ray enters a solid at the largest entering plane crossing and leaves at the
smallest leaving one (Cyrus-Beck). The same test on a vertical line gives each solid's height
interval over a grid cell, which is the occupancy truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOOR, BOX, TABLE, RAMP = 0, 1, 2, 3
CLASS_NAMES = ("floor", "box", "table", "ramp")
TRAVERSABLE = (FLOOR, RAMP)


@dataclass(frozen=True)
class Solid:
    """A convex solid: rows of ``normals`` (outward) and ``offsets`` with n . p <= c inside."""

    normals: np.ndarray
    offsets: np.ndarray
    label: int

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        """max_i(n_i . p - c_i): 0 on the surface, < 0 inside (metres, unit normals)."""
        return (p @ self.normals.T - self.offsets).max(axis=-1)


def box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, label: int) -> Solid:
    n = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], float)
    return Solid(n, np.array([-x0, x1, -y0, y1, -z0, z1]), label)


def ramp(x0: float, x1: float, y0: float, y1: float, rise: float) -> Solid:
    """A wedge rising along +x from height 0 at x0 to ``rise`` at x1 (its end face vertical)."""
    slope = np.array([-rise, 0.0, x1 - x0]) / np.hypot(rise, x1 - x0)
    n = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], slope])
    return Solid(n, np.array([-x0, x1, -y0, y1, 0.0, x0 * slope[0]]), RAMP)


def table(x0: float, x1: float, y0: float, y1: float, top: float, leg: float = 0.06,
          thickness: float = 0.04) -> list[Solid]:
    """A top from ``top - thickness`` to ``top`` on four square legs at its corners."""
    under = top - thickness
    legs = [box(x, x + leg, y, y + leg, 0.0, under, TABLE)
            for x in (x0, x1 - leg) for y in (y0, y1 - leg)]
    return [box(x0, x1, y0, y1, under, top, TABLE), *legs]


def default_solids(table_top: float = 0.9) -> list[Solid]:
    return [box(2.0, 2.4, -1.4, -0.9, 0.0, 0.5, BOX),
            box(3.4, 3.7, 0.9, 1.3, 0.0, 0.25, BOX),
            *table(2.2, 3.0, -0.3, 0.5, table_top),
            ramp(1.6, 2.8, 0.9, 1.5, 0.3)]


@dataclass
class World:
    """Solids on the floor plane; render() gives depth, labels and the solid hit per pixel."""

    solids: list[Solid] = field(default_factory=default_solids)

    def trace(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray parameter t of the first hit (inf = none) and its solid index (-1 = floor)."""
        t_best = np.full(dirs.shape[0], np.inf)
        down = dirs[:, 2] < 0
        t_best[down] = -origin[2] / dirs[down, 2]
        which = np.where(down, -1, -2)
        for k, s in enumerate(self.solids):
            t = _enter(origin, dirs, s)
            closer = t < t_best
            t_best[closer], which[closer] = t[closer], k
        return t_best, which

    def label_of(self, which: np.ndarray) -> np.ndarray:
        table_ = np.array([s.label for s in self.solids] + [255, FLOOR], np.uint8)
        return table_[which]  # -1 -> floor, -2 -> sky (255)

    def heights(self, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per solid, the (bottom, top) z of its material over each (x, y); NaN where none."""
        out = []
        for s in self.solids:
            o = np.stack([x, y, np.full_like(x, -10.0)], axis=-1).reshape(-1, 3)
            up = np.tile([0.0, 0.0, 1.0], (o.shape[0], 1))
            t_in, t_out = _interval(o, up, s)
            hit = t_in <= t_out
            lo = np.where(hit, t_in - 10.0, np.nan).reshape(x.shape)
            hi = np.where(hit, t_out - 10.0, np.nan).reshape(x.shape)
            out.append((lo, hi))
        return out


def _interval(origin: np.ndarray, dirs: np.ndarray, s: Solid) -> tuple[np.ndarray, np.ndarray]:
    o = origin.reshape(-1, 3)
    denom = dirs @ s.normals.T                   # (N, planes)
    num = s.offsets - o @ s.normals.T            # c - n . o
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / denom
    enter = np.where(denom < 0, t, -np.inf).max(axis=1)
    leave = np.where(denom > 0, t, np.inf).min(axis=1)
    parallel_out = ((denom == 0) & (num < 0)).any(axis=1)
    leave[parallel_out] = -np.inf
    return enter, leave


def _enter(origin: np.ndarray, dirs: np.ndarray, s: Solid) -> np.ndarray:
    enter, leave = _interval(origin, dirs, s)
    return np.where((enter <= leave) & (enter > 0), enter, np.inf)


def render(world: World, rays_x: np.ndarray, rays_y: np.ndarray, t_grid_optical: np.ndarray,
           max_depth: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth metres float64, NaN = no return, labels uint8, solid index per pixel: -1 floor,
    -2 nothing) for optical-frame rays (x_n, y_n, 1): the ray parameter is the depth. Hits
    beyond ``max_depth`` give no return, as a real sensor's range ends."""
    d_opt = np.stack([rays_x.ravel(), rays_y.ravel(), np.ones(rays_x.size)], axis=1)
    dirs = d_opt @ t_grid_optical[:3, :3].T
    t, which = world.trace(t_grid_optical[:3, 3], dirs)
    depth = np.where(t <= max_depth, t, np.nan).reshape(rays_x.shape)
    return depth, world.label_of(which).reshape(rays_x.shape), which.reshape(rays_x.shape)


def to_millimetres(depth: np.ndarray) -> np.ndarray:
    """16UC1 as a driver writes it: rounded millimetres, 0 = no return."""
    return np.where(np.isfinite(depth), np.round(depth * 1000.0), 0).astype("<u2")


def pinhole_rays(width: int, height: int, f: float) -> tuple[np.ndarray, np.ndarray]:
    """Independent of the code under test: centred pinhole, (u - cx) / f per pixel centre."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return (u - (width - 1) / 2) / f, (v - (height - 1) / 2) / f


def occupancy_truth(world: World, xs: np.ndarray, ys: np.ndarray, min_h: float,
                    max_h: float, resolution: float, samples: int = 5) -> np.ndarray:
    """(rows, cols) bool: some solid has material between min_h and max_h somewhere in the
    cell centred on (x = xs[col], y = ys[row]), probed at samples x samples points."""
    offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * resolution
    occ = np.zeros((ys.size, xs.size), bool)
    for dx in offsets:
        for dy in offsets:
            gx, gy = np.meshgrid(xs + dx, ys + dy)
            for lo, hi in world.heights(gx, gy):
                occ |= (hi >= min_h) & (lo <= max_h)
    return occ
