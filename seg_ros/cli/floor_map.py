"""`seg-ros floor-map --labels DIR --poses POSES.csv --camera-info CAM.yaml --camera-pose X Y Z
ROLL PITCH YAW (--traversable IDS | --model MODEL) --out MAP.yaml`: fuse a sequence of label
images into one nav2 map (map.yaml + map.pgm) in the map frame of the poses.

POSES.csv: a header row ``image,x,y,z,roll,pitch,yaw``, then one row per label image: the file's
name in DIR and the robot base's pose in the map frame when it was taken (REP 103: metres,
radians). ``--camera-pose`` is the camera body in the base frame, as ``seg-ros floor --pose``.
Each image becomes the node's per-frame grid (cells within --max-range of the camera) and is
fused as ~/floor_map fuses it (log-odds, no decay: the rows carry no time); the map covers
--origin / --size, or by default the trajectory's bounding box plus the range.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from seg_ros.cli.floor import (
    add_classes_and_camera,
    add_obstacle_mode,
    read_labels,
    summary,
    traversable_ids,
    write_nav2_map,
    write_preview,
)
from seg_ros.errors import ConfigError
from seg_ros.floor import (
    CameraModel,
    CameraPose,
    FloorMap,
    GridSpec,
    GroundProjector,
    MapSpec,
    Pose2D,
    local_grid_spec,
)
from seg_ros.floor.camera import rpy_matrix
from seg_ros.floor.map import MAX_WORLD_M

COLUMNS = ("image", "x", "y", "z", "roll", "pitch", "yaw")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, help="folder of single-channel class-id PNGs")
    p.add_argument("--poses", required=True, help="CSV: image,x,y,z,roll,pitch,yaw per image")
    add_classes_and_camera(p)
    p.add_argument("--camera-pose", required=True, nargs=6, type=float,
                   metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                   help="camera body pose in the base frame (m, rad; REP 103, pitch>0 = down)")
    p.add_argument("--resolution", type=float, default=0.05, help="m per cell (default 0.05)")
    p.add_argument("--size", nargs=2, type=float, default=None, metavar=("W", "H"),
                   help="map extent along x and y in m (default: trajectory + range)")
    p.add_argument("--origin", nargs=2, type=float, default=None, metavar=("X", "Y"),
                   help="lower-left corner of the map in m (default: trajectory - range)")
    p.add_argument("--max-range", type=float, default=8.0, help="m from the camera (default 8)")
    add_obstacle_mode(p)
    p.add_argument("--out", required=True, help="map YAML to write (the .pgm goes beside it)")


def read_poses(path: Path) -> list[tuple[str, np.ndarray]]:
    """(image name, 4x4 T_map_base) per row of POSES.csv."""
    if not path.is_file():
        raise FileNotFoundError(f"poses file {path} does not exist: check the path")
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the header
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): save it as "
                          "UTF-8 CSV") from None
    except csv.Error as e:
        raise ConfigError(f"{path} is not a readable CSV ({e}): save it as plain CSV") from None
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise ConfigError(f"{path} must start with the header row {','.join(COLUMNS)} "
                          f"(got {','.join(rows[0]) if rows else 'an empty file'})")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            x, y, z, roll, pitch, yaw = (float(v) for v in row[1:7])
            if len(row) != 7 or not all(map(math.isfinite, (x, y, z, roll, pitch, yaw))):
                raise ValueError
        except ValueError:
            raise ConfigError(f"{path} line {line}: {','.join(row)!r} is not an image name "
                              "and six finite numbers (x,y,z in m, roll,pitch,yaw in rad)"
                              ) from None
        if max(abs(x), abs(y), abs(z)) > MAX_WORLD_M:
            raise ConfigError(f"{path} line {line}: position ({x:g}, {y:g}, {z:g}) m is "
                              f"outside any plausible world (|x|, |y|, |z| <= {MAX_WORLD_M:g} "
                              "m): check the units (metres)")
        t = np.eye(4)
        t[:3, :3] = rpy_matrix(roll, pitch, yaw)
        t[:3, 3] = (x, y, z)
        out.append((row[0].strip(), t))
    if not out:
        raise ConfigError(f"{path} has a header but no pose rows: add one row per label image")
    return out


def floor_frame(t_map_base: np.ndarray, mount: CameraPose) -> tuple[Pose2D, CameraPose]:
    """The base's floor frame (x, y, yaw) in the map and the camera pose in that frame: the
    mount itself when the base is level on the floor (z, roll, pitch 0)."""
    pose = Pose2D.from_matrix(t_map_base)
    floor = np.eye(4)
    floor[:3, :3] = rpy_matrix(0.0, 0.0, pose.yaw)
    floor[:2, 3] = pose.x, pose.y
    return pose, CameraPose.from_matrix(np.linalg.inv(floor) @ t_map_base @ mount.matrix)


def map_window(args: argparse.Namespace, poses: list[tuple[str, np.ndarray]],
               reach: float) -> tuple[MapSpec, tuple[float, float]]:
    """The map's spec and lower-left origin: given, or the trajectory's box grown by ``reach``,
    on whole cells."""
    res = args.resolution
    xy = np.array([t[:2, 3] for _, t in poses])
    lo = np.floor((xy.min(axis=0) - reach) / res) * res
    hi = np.ceil((xy.max(axis=0) + reach) / res) * res
    origin = tuple(args.origin) if args.origin is not None else (float(lo[0]), float(lo[1]))
    size = tuple(args.size) if args.size is not None else (float(hi[0] - origin[0]),
                                                           float(hi[1] - origin[1]))
    spec = MapSpec(res, size[0], size[1], frame_id="map", half_life_s=0.0, rolling=False)
    return spec, (float(origin[0]), float(origin[1]))


def fuse_sequence(args: argparse.Namespace) -> tuple[FloorMap, int]:
    """The fused map of every row of --poses, and how many frames went in."""
    traversable = traversable_ids(args)
    camera = CameraModel.from_yaml(args.camera_info)
    mount = CameraPose.from_xyz_rpy(*args.camera_pose)
    poses = read_poses(Path(args.poses))
    foot = mount.matrix[:2, 3]
    local = local_grid_spec(args.resolution, args.max_range, (float(foot[0]), float(foot[1])))
    spec, origin = map_window(args, poses, args.max_range + float(np.hypot(*foot)))
    fused = FloorMap(spec, origin)
    proj = GroundProjector(local, camera, mount, args.obstacle_mode)
    folder = Path(args.labels)
    if not folder.is_dir():
        raise FileNotFoundError(f"label folder {folder} does not exist: check --labels")
    for k, (name, t_map_base) in enumerate(poses):
        pose, cam = floor_frame(t_map_base, mount)
        proj.configure(pose=cam)  # the table is rebuilt only if the base tilts
        grid = proj.update(read_labels(folder / name), traversable)
        fused.fuse(grid, local, pose, float(k))
    return fused, len(poses)


def run(args: argparse.Namespace) -> int:
    fused, frames = fuse_sequence(args)
    grid = fused.occupancy()
    s = fused.spec
    out = Path(args.out)
    pgm = write_nav2_map(grid, GridSpec(s.resolution, s.width_m, s.height_m, *fused.origin),
                         out)
    write_preview(grid, out.with_name(out.stem + "_preview.png"))
    print(f"wrote {out} + {pgm.name}: {frames} frames fused into {s.cols}x{s.rows} cells at "
          f"{s.resolution} m, origin ({fused.origin[0]:g}, {fused.origin[1]:g}), "
          + summary(grid))
    return 0
