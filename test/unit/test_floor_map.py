"""The fused floor map against a simulated drive through a ray-traced world (test/floor_world.py):
known area grows, fusion beats every single frame, a removed box fades, the rolling window keeps
its cells in world coordinates; the pose buffer's interpolation; parameter errors."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from floor_world import (
    BOX,
    FLOOR,
    TRAVERSABLE,
    Box,
    World,
    camera_in_world,
    footprint,
    nav2_load,
    near,
    read_pgm,
    render,
    with_noise,
)

from seg_ros.cli import main as cli_main
from seg_ros.errors import ConfigError
from seg_ros.floor import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    CameraModel,
    CameraPose,
    FloorMap,
    GridSpec,
    GroundProjector,
    MapSpec,
    Pose2D,
    PoseBuffer,
)
from seg_ros.floor.map import checked_pose, local_grid_spec, pose_problem

CAMERA = CameraModel(320, 240, (250.0, 0.0, 159.5, 0.0, 250.0, 119.5, 0.0, 0.0, 1.0),
                     (-0.1, 0.02, 0.0, 0.0, 0.0))
MOUNT = CameraPose.from_xyz_rpy(0.2, 0.0, 1.0, 0.0, 0.45, 0.0)  # camera body in base_footprint
LOCAL = GridSpec(0.05, 7.0, 8.0, -0.5, -4.0, max_range_m=6.0)
SIDE_BOX = Box(4.0, 4.5, -1.6, -0.9, 0.8)
WORLD = World(((FLOOR, -5.0, 25.0, -10.0, 10.0),),
              (SIDE_BOX, Box(7.0, 7.6, 0.9, 1.6, 1.0), Box(10.0, 10.5, -0.3, 0.3, 0.5)))
RATE_HZ = 10.0


def drive(frames: int, step_m: float = 0.1) -> list[Pose2D]:
    """A gentle S-curve along +x, one pose per frame."""
    xs = np.arange(frames) * step_m
    ys = 0.3 * np.sin(xs / 3.0)
    yaws = np.arctan(0.1 * np.cos(xs / 3.0))
    return [Pose2D(float(x), float(y), float(a)) for x, y, a in zip(xs, ys, yaws)]


def frame_grids(poses: list[Pose2D], world_at, noise: float = 0.0,
                spec: GridSpec = LOCAL) -> list[np.ndarray]:
    """Per-frame contact grids in the base frame: labels rendered at each pose, projected with
    the one fixed lookup table of the mounted camera."""
    proj = GroundProjector(spec, CAMERA, MOUNT)
    out = []
    for k, pose in enumerate(poses):
        labels = render(CAMERA, camera_in_world(pose, MOUNT), world_at(k))
        if noise:
            labels = with_noise(labels, noise, BOX, seed=k)
        out.append(proj.update(labels, TRAVERSABLE).copy())
    return out


def map_spec_as_grid(m: FloorMap) -> GridSpec:
    s = m.spec
    return GridSpec(s.resolution, s.width_m, s.height_m, *m.origin, max_range_m=1.0)


def score(m: FloorMap, world: World) -> tuple[int, float]:
    """(known cells, fraction of them that agree with the truth: free on free floor, occupied
    within 2 cells of an obstacle footprint)."""
    occ = m.occupancy()
    fp = footprint(map_spec_as_grid(m), world)
    known = occ != UNKNOWN
    right = ((occ == FREE) & ~fp) | ((occ == OCCUPIED) & near(fp, 2))
    return int(known.sum()), float(right[known].mean()) if known.any() else 0.0


def test_fusion_grows_and_beats_every_single_frame() -> None:
    poses = drive(50)
    grids = frame_grids(poses, lambda k: WORLD, noise=0.01)
    spec = MapSpec(0.05, 20.0, 20.0, rolling=False, half_life_s=0.0)
    fused, known, singles = FloorMap(spec, origin=(-4.0, -10.0)), [], []
    for k, (grid, pose) in enumerate(zip(grids, poses)):
        fused.fuse(grid, LOCAL, pose, k / RATE_HZ)
        known.append(score(fused, WORLD)[0])
        single = FloorMap(spec, origin=(-4.0, -10.0))
        single.fuse(grid, LOCAL, pose, k / RATE_HZ)
        singles.append(score(single, WORLD))
    assert fused.fused == 50
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(known)), "known area must grow"
    assert known[-1] > 2 * known[0] and known[-1] > max(n for n, _ in singles)
    agree = score(fused, WORLD)[1]
    best = max(a for _, a in singles)
    assert agree > best, f"fused {agree:.4f} vs best single frame {best:.4f}"
    assert agree >= 0.99
    occ = fused.occupancy()
    fp = footprint(map_spec_as_grid(fused), WORLD)
    for box in WORLD.boxes[:2]:  # both boxes passed on the way are in the map where they stand
        own = footprint(map_spec_as_grid(fused), World(((FLOOR, -9, 30, -9, 9),), (box,)))
        assert (occ[near(own, 2)] == OCCUPIED).sum() >= 5, box
    assert (occ[fp] == FREE).mean() < 0.05


def test_removed_box_fades_within_the_half_life() -> None:
    """One half-life after the box is gone none of its cells is occupied: those seen again are
    free, those that left the view have decayed to unknown."""
    poses = drive(50, step_m=0.03)  # slow: the side box stays in view for a while
    gone_at, half_life = 30, 2.0
    grids = frame_grids(poses, lambda k: WORLD if k < gone_at else WORLD.without(SIDE_BOX))
    spec = MapSpec(0.05, 16.0, 16.0, half_life_s=half_life)
    m = FloorMap(spec)
    for k, (grid, pose) in enumerate(zip(grids, poses)):
        m.fuse(grid, LOCAL, pose, k / RATE_HZ)
        if k == gone_at - 1:
            box = World(((FLOOR, -9, 9, -9, 9),), (SIDE_BOX,))
            box_cells = near(footprint(map_spec_as_grid(m), box), 1)
            assert (m.occupancy()[box_cells] == OCCUPIED).sum() >= 10
            seen_again = FloorMap(spec, origin=m.origin)
        elif k >= gone_at:
            seen_again.fuse(grid, LOCAL, pose, k / RATE_HZ)
    # the last frame is one half-life after the last one that saw the box
    assert (k - gone_at + 1) / RATE_HZ == pytest.approx(half_life) and m.recentres == 0
    occ = m.occupancy()
    assert (occ[box_cells] == OCCUPIED).sum() == 0
    again = box_cells & (seen_again.occupancy() == FREE)
    assert again.sum() >= 10 and (occ[again] == FREE).all()
    assert (occ[box_cells & ~again] == UNKNOWN).sum() >= 3  # left the view: faded


def test_unseen_cells_decay_to_unknown() -> None:
    """clamp_max 1.2 < 2 logit(0.65): a sure obstacle is unknown after one half-life unseen."""
    spec = MapSpec(0.05, 4.0, 4.0, half_life_s=1.0)
    m = FloorMap(spec, origin=(-2.0, -2.0))
    grid = np.full((LOCAL.rows, LOCAL.cols), OCCUPIED, np.int8)
    for k in range(10):
        m.fuse(grid, LOCAL, Pose2D(0.0, 0.0, 0.0), 0.1 * k)
    assert (m.occupancy() == OCCUPIED).sum() > 1000 and m.logodds.max() == spec.clamp_max
    m.decay_to(0.9 + 0.9)  # 0.9 half-lives: 1.2 * 0.54 = 0.64, still occupied
    assert (m.occupancy() == OCCUPIED).sum() > 1000
    m.decay_to(0.9 + 1.0)
    assert (m.occupancy() == OCCUPIED).sum() == 0 and m.stamp_s == pytest.approx(1.9)
    assert (m.occupancy() == UNKNOWN).all()


def test_rolling_window_keeps_world_cells() -> None:
    """A 12 m window rolling over a 9 m drive equals the same cells of a 30 m fixed map."""
    poses = drive(90)
    local = GridSpec(0.05, 3.5, 6.0, -0.5, -3.0, max_range_m=3.0)  # <= a quarter window
    grids = frame_grids(poses, lambda k: WORLD, spec=local)
    rolling = FloorMap(MapSpec(0.05, 12.0, 12.0, half_life_s=5.0))
    fixed = FloorMap(MapSpec(0.05, 30.0, 30.0, half_life_s=5.0, rolling=False))
    for k, (grid, pose) in enumerate(zip(grids, poses)):
        rolling.fuse(grid, local, pose, k / RATE_HZ)
        fixed.fuse(grid, local, pose, k / RATE_HZ)
    assert rolling.recentres >= 2 and fixed.recentres == 0
    ox, oy = rolling.origin
    assert abs(ox - (poses[-1].x - 6.0)) <= 3.05 and abs(oy - (poses[-1].y - 6.0)) <= 3.05
    c0 = round((ox - fixed.origin[0]) / 0.05)
    r0 = round((oy - fixed.origin[1]) / 0.05)
    same = fixed.logodds[r0:r0 + 240, c0:c0 + 240]
    np.testing.assert_array_equal(rolling.logodds, same)
    assert (rolling.occupancy() == OCCUPIED).sum() >= 5 and (rolling.occupancy() == FREE).any()


def test_pose_buffer_interpolates_and_ages() -> None:
    buf = PoseBuffer(capacity=4)
    buf.add(1.0, Pose2D(0.0, 0.0, math.pi - 0.1))
    buf.add(1.1, Pose2D(1.0, 2.0, -math.pi + 0.1))  # yaw crosses +-pi: the short way round
    mid = buf.at(1.05, max_age_s=0.1)
    assert mid is not None
    assert (mid.x, mid.y) == pytest.approx((0.5, 1.0)) and abs(mid.yaw) == pytest.approx(math.pi)
    assert buf.at(1.1, 0.1) == Pose2D(1.0, 2.0, -math.pi + 0.1)
    assert buf.at(1.15, 0.1) == Pose2D(1.0, 2.0, -math.pi + 0.1)  # the newest, within max age
    assert buf.at(1.25, 0.1) is None and buf.at(0.85, 0.1) is None
    buf.add(2.0, Pose2D(5.0, 0.0, 0.0))  # a gap of 0.9 s: nothing in between
    assert buf.at(1.5, 0.1) is None
    for t in (2.1, 2.2, 2.3):
        buf.add(t, Pose2D(t, 0.0, 0.0))
    assert len(buf) == 4 and buf.at(1.05, 0.1) is None and buf.newest() == 2.3
    buf.add(2.15, Pose2D(9.0, 0.0, 0.0))  # out of order: sorted in
    assert buf.at(2.15, 0.1) == Pose2D(9.0, 0.0, 0.0)


@pytest.mark.parametrize("x, y, q, why", [
    (math.nan, 0.0, (0, 0, 0, 1), "position.x is nan"),
    (0.0, -math.inf, (0, 0, 0, 1), "position.y is -inf"),
    (0.0, 0.0, (0, 0, math.nan, 1), "orientation.z is nan"),
    (1e300, 0.0, (0, 0, 0, 1), "outside any plausible world"),
    (0.0, 0.0, (0, 0, 2 * math.sin(math.pi / 4), 2 * math.cos(math.pi / 4)), "not a unit"),
    (0.0, 0.0, (0, 0, 0, 0), "a zero quaternion"),
])
def test_checked_pose_refuses_what_no_map_can_use(x, y, q, why) -> None:
    pose, reason = checked_pose(x, y, q)
    assert pose is None and why in reason, reason


def test_checked_pose_normalises_within_tf2_tolerance() -> None:
    s, c = 1.004 * math.sin(math.pi / 4), 1.004 * math.cos(math.pi / 4)
    q = (0.0, 0.0, s, c)
    pose, why = checked_pose(3.0, -4.0, q)
    assert why == "" and pose is not None
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((3.0, -4.0, math.pi / 2))
    assert pose_problem(Pose2D(math.nan, 0.0, 0.0)) and pose_problem(Pose2D(2e7, 0.0, 0.0))
    m = FloorMap(MapSpec(resolution=0.5, width_m=4.0, height_m=4.0))
    g = local_grid_spec(0.5, 1.0)
    with pytest.raises(ValueError, match="not finite"):
        m.fuse(np.zeros((g.rows, g.cols), np.int8), g, Pose2D(math.nan, 0.0, 0.0), 1.0)


def test_time_going_back_state() -> None:
    buf = PoseBuffer()
    for t in (10.0, 10.1, 10.2):
        buf.add(t, Pose2D(t, 0.0, 0.0))
    assert buf.drop_after(10.05) == 2 and buf.newest() == 10.0
    buf.clear()
    assert len(buf) == 0 and buf.newest() is None
    m = FloorMap(MapSpec(resolution=0.5, width_m=4.0, height_m=4.0, half_life_s=1.0))
    m.decay_to(100.0)
    m.reset_time()
    assert m.stamp_s is None
    m.decay_to(5.0)  # after the reset an earlier stamp restarts the clock
    assert m.stamp_s == 5.0


def test_pose2d_conventions() -> None:
    q = (0.0, 0.0, math.sin(0.35), math.cos(0.35))
    assert Pose2D.from_quaternion(1.0, 2.0, q) == pytest.approx(Pose2D(1.0, 2.0, 0.7))
    t = np.eye(4)
    t[:2, :2] = [[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]]
    t[:3, 3] = (1.0, 2.0, 0.3)
    assert Pose2D.from_matrix(t) == pytest.approx(Pose2D(1.0, 2.0, 0.7))


def test_a_grid_lands_where_the_pose_says() -> None:
    """One occupied cell 2 m ahead of a robot at (1, 1) facing +y lands at (1, 3)."""
    grid = np.full((LOCAL.rows, LOCAL.cols), UNKNOWN, np.int8)
    col = int((2.0 - LOCAL.origin_x) / LOCAL.resolution)
    row = int((0.0 - LOCAL.origin_y) / LOCAL.resolution)
    grid[row, col] = OCCUPIED
    m = FloorMap(MapSpec(0.05, 10.0, 10.0), origin=(-5.0, -5.0))
    m.fuse(grid, LOCAL, Pose2D(1.0, 1.0, math.pi / 2), 0.0)
    rows, cols = np.nonzero(m.occupancy() == OCCUPIED)
    xs = -5.0 + (cols + 0.5) * 0.05
    ys = -5.0 + (rows + 0.5) * 0.05
    assert len(rows) >= 1
    assert np.allclose(xs, 1.0, atol=0.06) and np.allclose(ys, 3.0, atol=0.06)


@pytest.mark.parametrize("kwargs, match", [
    ({"resolution": 0.0}, "resolution=0.0 must be a positive"),
    ({"clamp_min": 0.5}, "clamp_min < 0 < clamp_max"),
    ({"half_life_s": -1.0}, "half_life=-1.0 s must be >= 0"),
    ({"free_threshold": 0.6}, "0 < free < 0.5 < occupied < 1"),
    ({"frame_id": " "}, "map frame is empty"),
    ({"width_m": 1e4}, "exceeds 4,000,000"),
])
def test_map_spec_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MapSpec(**kwargs)


def test_fuse_refuses_a_grid_of_another_spec() -> None:
    m = FloorMap(MapSpec())
    with pytest.raises(ConfigError, match="pass the grid this spec describes"):
        m.fuse(np.zeros((3, 3), np.int8), LOCAL, Pose2D(0, 0, 0), 0.0)


# ----------------------------------------------------------------------------- seg-ros floor-map


def write_drive(folder: Path, poses: list[Pose2D], world: World) -> Path:
    """Label PNGs of a drive and its POSES.csv; the CSV path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["image,x,y,z,roll,pitch,yaw"]
    for k, p in enumerate(poses):
        cv2.imwrite(str(folder / f"f{k:02d}.png"), render(CAMERA, camera_in_world(p, MOUNT), world))
        rows.append(f"f{k:02d}.png,{p.x!r},{p.y!r},0.0,0.0,0.0,{p.yaw!r}")
    (folder / "poses.csv").write_text("\n".join(rows) + "\n")
    return folder / "poses.csv"


def camera_yaml(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "image_width": CAMERA.width, "image_height": CAMERA.height,
        "camera_matrix": {"rows": 3, "cols": 3, "data": list(CAMERA.K)},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": list(CAMERA.D)}}))
    return path


def cli_args(tmp_path: Path, poses_csv: Path) -> list[str]:
    return ["floor-map", "--labels", str(poses_csv.parent), "--poses", str(poses_csv),
            "--camera-info", str(camera_yaml(tmp_path / "cam.yaml")),
            "--camera-pose", "0.2", "0", "1.0", "0", "0.45", "0", "--traversable", "3,4",
            "--max-range", "6", "--out", str(tmp_path / "out" / "map.yaml")]


def test_cli_floor_map_fuses_a_drive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    poses = drive(25, step_m=0.2)
    csv_path = write_drive(tmp_path / "drive", poses, WORLD)
    assert cli_main(cli_args(tmp_path, csv_path)) == 0
    printed = capsys.readouterr().out
    assert "25 frames fused" in printed, printed
    meta = yaml.safe_load((tmp_path / "out" / "map.yaml").read_text())
    grid = nav2_load(meta, read_pgm(tmp_path / "out" / "map.pgm"))
    # Default window: the trajectory's box plus range + the camera's offset, on whole cells.
    ox, oy, _ = meta["origin"]
    assert ox == pytest.approx(-6.2) and oy == pytest.approx(-6.2)
    assert grid.shape == (254, 344)  # y 0 .. 0.3 and x 0 .. 4.8, each +- 6.2 m
    spec = GridSpec(0.05, grid.shape[1] * 0.05, grid.shape[0] * 0.05, ox, oy, 1.0)
    fp = footprint(spec, WORLD)
    occ, free = grid == OCCUPIED, grid == FREE
    assert free.sum() > 10000 and occ.sum() > 20
    assert (~fp[free]).mean() >= 0.995 and near(fp, 2)[occ].mean() >= 0.95
    assert (tmp_path / "out" / "map_preview.png").is_file()


@pytest.mark.parametrize("csv_text, match", [
    ("image,x,y\nf00.png,0,0\n", "must start with the header row image,x,y,z,roll,pitch,yaw"),
    ("image,x,y,z,roll,pitch,yaw\n", "no pose rows"),
    ("image,x,y,z,roll,pitch,yaw\nf00.png,0,zero,0,0,0,0\n", "line 2: .* six finite numbers"),
    ("image,x,y,z,roll,pitch,yaw\nnope.png,0,0,0,0,0,0\n", "nope.png does not exist"),
])
def test_cli_floor_map_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              csv_text: str, match: str) -> None:
    csv_path = write_drive(tmp_path / "drive", drive(1), WORLD)
    csv_path.write_text(csv_text)
    assert cli_main(cli_args(tmp_path, csv_path)) == 2
    assert re.search(match, capsys.readouterr().err)


def test_origin_off_the_cell_lattice_and_a_robot_outside_a_fixed_window() -> None:
    grid = np.full((LOCAL.rows, LOCAL.cols), OCCUPIED, np.int8)
    m = FloorMap(MapSpec(0.05, 4.0, 4.0, rolling=False), origin=(0.012, -2.013))
    assert m.origin == (0.012, -2.013)
    m.fuse(grid, LOCAL, Pose2D(0.0, 0.0, 0.0), 0.0)
    occ = m.occupancy()
    cols = np.flatnonzero(occ.any(axis=0))
    # the grid reaches x = 6.5 and y = +-4: every map cell from x = 0.012 on, all rows
    assert cols[0] == 0 and cols[-1] == 79 and occ.all()
    m.fuse(grid, LOCAL, Pose2D(50.0, 0.0, 0.0), 1.0)  # far outside: nothing to lay, no move
    assert m.origin == (0.012, -2.013) and m.fused == 1 and m.recentres == 0
