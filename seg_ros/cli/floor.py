"""`seg-ros floor LABELS.png --traversable 3,4 --camera-info cam.yaml --pose X Y Z R P Y --out
map.yaml`: project a label image onto the floor and save it as a nav2 map (map.yaml + map.pgm).

The map's frame is the grid frame the pose is given in (e.g. base_footprint: x forward,
y left). A preview PNG (free green, occupied red, unknown grey, same orientation as the pgm)
is written next to it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from seg_ros.errors import ConfigError
from seg_ros.floor import (
    FREE,
    OBSTACLE_MODES,
    OCCUPIED,
    CameraModel,
    CameraPose,
    GridSpec,
    GroundProjector,
)
from seg_ros.frames import image_file_size

# nav2 map_saver trinary pixels (negate 0): free 254, occupied 0, unknown 205.
PGM_FREE, PGM_OCCUPIED, PGM_UNKNOWN = 254, 0, 205
# nav2 map_server reads occ = (255 - pixel) / 255 and calls it free when occ < free_thresh.
# Unknown 205 gives occ 0.196, so free_thresh must not exceed 0.196 (ROS 1 map_saver's value):
# with nav2's 0.25 default every unknown cell would be loaded as free.
OCCUPIED_THRESH, FREE_THRESH = 0.65, 0.196


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("labels", help="single-channel class-id PNG (seg-ros segment *_labels.png)")
    add_classes_and_camera(p)
    p.add_argument("--pose", required=True, nargs=6, type=float,
                   metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                   help="camera body pose in the grid frame (m, rad; REP 103, pitch>0 = down)")
    p.add_argument("--resolution", type=float, default=0.05, help="m per cell (default 0.05)")
    p.add_argument("--size", nargs=2, type=float, default=(10.0, 10.0), metavar=("W", "H"),
                   help="grid extent along x and y in m (default 10 10)")
    p.add_argument("--origin", nargs=2, type=float, default=None, metavar=("X", "Y"),
                   help="lower-left corner of the grid in m (default: 0, -H/2 = ahead)")
    p.add_argument("--max-range", type=float, default=8.0, help="m from the camera (default 8)")
    p.add_argument("--confidence", help="optional uint8 confidence PNG of the same frame")
    p.add_argument("--min-confidence", type=int, default=0,
                   help="pixels below this confidence (0..255) leave their cell unknown")
    add_obstacle_mode(p)
    p.add_argument("--out", required=True, help="map YAML to write (the .pgm goes beside it)")


def add_classes_and_camera(p: argparse.ArgumentParser) -> None:
    """--model | --traversable (what is floor) and --camera-info, as floor and floor-map take
    them (read back by :func:`traversable_ids`)."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model file whose card lists the traversable classes")
    which.add_argument("--traversable", help="comma-separated traversable class ids, e.g. 3,4")
    p.add_argument("--camera-info", required=True, help="camera_calibration YAML of the camera")


def add_obstacle_mode(p: argparse.ArgumentParser) -> None:
    p.add_argument("--obstacle-mode", choices=OBSTACLE_MODES, default="contact",
                   help="contact (default): obstacles occupied where they stand on the floor, "
                        "the floor they hide unknown; projected: every pixel as if painted on "
                        "the floor")


def parse_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise ConfigError(f"--traversable {text!r} is not a comma-separated list of class "
                          "ids: write e.g. --traversable 3,4") from None
    if not ids:
        raise ConfigError("--traversable is empty: list the class ids the robot may drive on")
    return ids


def read_labels(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"label image {path} does not exist: check the path")
    image_file_size(path)  # from the header: an empty, foreign or huge file refused first
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"{path} is not a single-channel 8/16-bit class-id image: pass the "
                          "*_labels.png that seg-ros segment writes, not a colour mask")
    return labels


def pgm_image(grid: np.ndarray) -> np.ndarray:
    """OccupancyGrid order (row 0 = origin edge) -> image order (row 0 = far y edge)."""
    img = np.full(grid.shape, PGM_UNKNOWN, np.uint8)
    img[grid == FREE] = PGM_FREE
    img[grid == OCCUPIED] = PGM_OCCUPIED
    return img[::-1]


def write_nav2_map(grid: np.ndarray, spec: GridSpec, yaml_path: Path) -> Path:
    """Write map.pgm (P5) + map.yaml as nav2 map_saver does (trinary); returns the pgm path."""
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    pgm = yaml_path.with_suffix(".pgm")
    img = pgm_image(grid)
    header = f"P5\n# CREATOR: seg-ros floor {spec.resolution:.3f} m/pix\n"
    header += f"{img.shape[1]} {img.shape[0]}\n255\n"
    pgm.write_bytes(header.encode("ascii") + img.tobytes())
    yaml_path.write_text(
        f"image: {pgm.name}\nmode: trinary\nresolution: {spec.resolution}\n"
        f"origin: [{spec.origin_x}, {spec.origin_y}, 0.0]\nnegate: 0\n"
        f"occupied_thresh: {OCCUPIED_THRESH}\nfree_thresh: {FREE_THRESH}\n")
    return pgm


def write_preview(grid: np.ndarray, path: Path, min_side: int = 400) -> None:
    """Colour PNG in pgm orientation, upscaled (nearest) so the short side is >= min_side."""
    bgr = np.full((*grid.shape, 3), 128, np.uint8)
    bgr[grid == FREE] = (80, 200, 80)
    bgr[grid == OCCUPIED] = (60, 60, 220)
    scale = max(1, -(-min_side // min(grid.shape)))
    bgr = np.repeat(np.repeat(bgr[::-1], scale, axis=0), scale, axis=1)
    cv2.imwrite(str(path), bgr)


def traversable_ids(args: argparse.Namespace) -> tuple[int, ...]:
    """--model's card traversable classes, or --traversable's ids."""
    if args.model:
        from seg_ros.model_card import read_card

        traversable = tuple(read_card(args.model).traversable)
        if not traversable:
            raise ConfigError(f"the card of {args.model} lists no traversable classes: pass "
                              "--traversable ids instead")
        return traversable
    return parse_ids(args.traversable)


def summary(grid: np.ndarray) -> str:
    """'free N, occupied N, unknown N' of an OccupancyGrid array."""
    return ", ".join(f"{name} {int((grid == v).sum())}" for name, v in
                     (("free", FREE), ("occupied", OCCUPIED), ("unknown", -1)))


def run(args: argparse.Namespace) -> int:
    traversable = traversable_ids(args)
    camera = CameraModel.from_yaml(args.camera_info)
    pose = CameraPose.from_xyz_rpy(*args.pose)
    width, height = args.size
    origin = args.origin if args.origin is not None else (0.0, -height / 2)
    spec = GridSpec(args.resolution, width, height, origin[0], origin[1], args.max_range)
    labels = read_labels(Path(args.labels))
    confidence = None
    if args.confidence:
        confidence = cv2.imread(args.confidence, cv2.IMREAD_GRAYSCALE)
        if confidence is None:
            raise ConfigError(f"{args.confidence} is not a readable image: check the path")
    grid = GroundProjector(spec, camera, pose, args.obstacle_mode).update(
        labels, traversable, confidence, args.min_confidence)
    out = Path(args.out)
    pgm = write_nav2_map(grid, spec, out)
    write_preview(grid, out.with_name(out.stem + "_preview.png"))
    print(f"wrote {out} + {pgm.name}: {spec.cols}x{spec.rows} cells at {spec.resolution} m, "
          + summary(grid))
    return 0
