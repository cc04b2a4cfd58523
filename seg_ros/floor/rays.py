"""Viewing rays on the floor, as a tree of grid cells, for ground-contact marking.

Every point of a vertical plane through the camera centre projects onto the floor along the
same ground line from the camera's foot (its vertical projection on z = 0), whatever the roll,
pitch or lens distortion. So "the cells between the camera and this cell along its viewing ray"
are the cells on the ground segment from the foot to the cell, and an obstacle standing on the
floor first meets that segment at its ground contact.

Each cell's *parent* is the cell one resolution step closer to the foot along that segment; the
parents form a tree rooted at the foot. In a depth-first order of that tree every cell's
descendants (the cells it hides) are one contiguous run, so per frame "is any cell before me
occupied" is a cumulative sum over the occupied cells' runs: O(cells), no Python loop.
"""

from __future__ import annotations

import numpy as np

from seg_ros.floor.grid_spec import GridSpec


def in_range_cells(spec: GridSpec, foot_xy: tuple[float, float]) -> np.ndarray:
    """Flat indices (ascending) of the cells whose centre is within max_range_m of the foot."""
    xs, ys = spec.cell_centres()
    dx2 = (xs - foot_xy[0]) ** 2
    keep = []
    step = max(1, (1 << 20) // spec.cols)  # bounded memory on huge grids
    for r0 in range(0, spec.rows, step):
        dy2 = (ys[r0:r0 + step, None] - foot_xy[1]) ** 2
        keep.append(np.flatnonzero(dx2[None, :] + dy2 <= spec.max_range_m ** 2) + r0 * spec.cols)
    return np.concatenate(keep).astype(np.int64) if keep else np.empty(0, np.int64)


def ray_parents(spec: GridSpec, foot_xy: tuple[float, float], nodes: np.ndarray) -> np.ndarray:
    """Parent node index of each node (flat cell indices ``nodes``), -1 = child of the foot.

    The parent is the cell holding the point one resolution step from the cell centre toward
    the foot: always strictly closer to it (by >= 0.29 cells), so the parents form a tree."""
    res = spec.resolution
    rows, cols = np.divmod(nodes, spec.cols)
    x = spec.origin_x + (cols + 0.5) * res - foot_xy[0]
    y = spec.origin_y + (rows + 0.5) * res - foot_xy[1]
    r = np.hypot(x, y)
    scale = np.where(r > res, 1.0 - res / np.maximum(r, res), 0.0)
    pc = np.floor((x * scale + foot_xy[0] - spec.origin_x) / res).astype(np.int64)
    pr = np.floor((y * scale + foot_xy[1] - spec.origin_y) / res).astype(np.int64)
    inside = (r > res) & (pc >= 0) & (pc < spec.cols) & (pr >= 0) & (pr < spec.rows)
    node_of = np.full(spec.rows * spec.cols, -1, np.int64)
    node_of[nodes] = np.arange(nodes.size)
    parent = np.full(nodes.size, -1, np.int64)
    parent[inside] = node_of[pr[inside] * spec.cols + pc[inside]]
    return parent


def _depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each node (children of the foot: 0), by pointer jumping: log2(depth) passes."""
    depth = (parent >= 0).astype(np.int64)
    anc = parent.copy()
    while (has := anc >= 0).any():
        idx = np.flatnonzero(has)
        a = anc[idx]
        depth[idx] += depth[a]
        anc[idx] = anc[a]
    return depth


def depth_first_runs(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each node in a depth-first order, end of its subtree's run), int32.

    A node's descendants are exactly the positions pos + 1 .. end - 1. One vectorised pass per
    depth level (sizes bottom-up, positions top-down)."""
    n = parent.size
    depth = _depths(parent)
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(depth.max(initial=-1) + 2))
    levels = [by_depth[bounds[d]:bounds[d + 1]] for d in range(len(bounds) - 1)]
    size = np.ones(n, np.int64)
    for level in reversed(levels[1:]):
        np.add.at(size, parent[level], size[level])
    pos = np.zeros(n, np.int64)
    for d, level in enumerate(levels):
        par = parent[level]
        order = np.argsort(par, kind="stable")
        level, par = level[order], par[order]
        sizes = size[level]
        before = np.cumsum(sizes) - sizes  # exclusive running sum over the level
        if d == 0:
            pos[level] = before
            continue
        starts = np.flatnonzero(np.r_[True, par[1:] != par[:-1]])
        base = np.repeat(before[starts], np.diff(np.r_[starts, level.size]))
        pos[level] = pos[par] + 1 + before - base
    return pos.astype(np.int32), (pos + size).astype(np.int32)


def side_runs(spec: GridSpec, foot_xy: tuple[float, float], nodes: np.ndarray,
              pos: np.ndarray, end: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pos, end) of the 8-neighbours of each of ``cells`` that are not nearer the foot, shape
    (len(cells), 8); a missing neighbour has the empty run (0, 1).

    A ray grazing an obstacle's side may pass beside its contact cells once snapped to cell
    centres; hiding what lies behind the contact's side neighbours too closes that gap (the
    shadow grows by about one cell)."""
    res = spec.resolution
    node_of = np.full(spec.rows * spec.cols, -1, np.int64)
    node_of[nodes] = np.arange(nodes.size)
    rows, cols = np.divmod(cells.astype(np.int64), spec.cols)
    xs, ys = spec.cell_centres()
    fx, fy = foot_xy
    rng = np.hypot(xs[cols] - fx, ys[rows] - fy)
    side_pos = np.zeros((cells.size, 8), np.int32)
    side_end = np.ones((cells.size, 8), np.int32)
    offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    for k, (dr, dc) in enumerate(offsets):
        r, c = rows + dr, cols + dc
        ok = (r >= 0) & (r < spec.rows) & (c >= 0) & (c < spec.cols)
        node = np.where(ok, node_of[np.where(ok, r * spec.cols + c, 0)], -1)
        ok &= node >= 0
        ok &= np.hypot(xs[np.clip(c, 0, spec.cols - 1)] - fx,
                       ys[np.clip(r, 0, spec.rows - 1)] - fy) >= rng - 0.5 * res
        side_pos[ok, k], side_end[ok, k] = pos[node[ok]], end[node[ok]]
    return side_pos, side_end


def _covered(starts: np.ndarray, ends: np.ndarray, at: np.ndarray, nodes: int) -> np.ndarray:
    """For each position in ``at``: does it lie in one of the runs starts[i] + 1 .. ends[i] - 1."""
    cover = np.bincount(starts + 1, minlength=nodes + 1)
    cover -= np.bincount(ends, minlength=nodes + 1)
    return np.cumsum(cover)[at] > 0


def hidden_mask(occupied: np.ndarray, ray_pos: np.ndarray, ray_end: np.ndarray, nodes: int,
                side_pos: np.ndarray | None = None,
                side_end: np.ndarray | None = None) -> np.ndarray:
    """Which cells lie behind an occupied cell along their ray (per visible cell, bool).

    ``occupied``, ``ray_pos``, ``ray_end``: per visible cell; ``nodes``: cells in the tree;
    ``side_pos`` / ``side_end`` (see :func:`side_runs`): also hide what lies behind the side
    neighbours of each first occupied cell (the contact)."""
    hidden = _covered(ray_pos[occupied], ray_end[occupied], ray_pos, nodes)
    if side_pos is not None and side_end is not None:
        contact = occupied & ~hidden
        hidden |= _covered(side_pos[contact].ravel(), side_end[contact].ravel(), ray_pos, nodes)
    return hidden
