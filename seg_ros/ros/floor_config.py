"""The floor grid's parameters (grid_frame, use_tf, tf_timeout, camera_pose, grid.*): their
specs, their ROS-free validation (:func:`config_from`) and their group (seg_ros.ros.param_groups).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seg_ros.errors import ConfigError
from seg_ros.floor import OBSTACLE_MODES, CameraPose, GridSpec
from seg_ros.floor.grid import check_obstacle_mode
from seg_ros.ros.param_groups import ParamGroup
from seg_ros.ros.params import ParamSpec, parse_class_filter

# config/camvid.yaml's camera_pose: the CamVid car's camera, not a robot's (a WARN at start)
EXAMPLE_CAMERA_POSE = (0.0, 0.0, 1.2, 0.0, 0.03, 0.0)

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("grid_frame", "string", "base_footprint",
              "Frame of ~/floor_grid: a frame on the floor, z up (base_footprint: x forward, "
              "y left). tf mode looks up this frame <- the image's header.frame_id.", live=True),
    ParamSpec("use_tf", "bool", True,
              "Camera pose from tf2 at each image stamp (grid_frame <- image frame_id) when "
              "tf2_ros is installed; false, or no tf2_ros: from camera_pose.", live=True),
    ParamSpec("tf_timeout", "double", 0.05,
              "Seconds to wait for the transform at the image stamp before skipping the frame's "
              "grid (counted as floor_tf_failures).", live=True, float_range=(0.0, 1.0)),
    ParamSpec("camera_pose", "double_array", None,
              "[x, y, z, roll, pitch, yaw]: the camera body frame in grid_frame (metres, "
              "radians; REP 103: x forward, z up, pitch > 0 looks down; z = height above the "
              "floor, > 0). Used when tf is off or unavailable. Write floats: [0.0, 0.0, 1.2, "
              "0.0, 0.1, 0.0].", live=True),
    ParamSpec("grid.resolution", "double", 0.05,
              "Cell edge in metres.", live=True, float_range=(0.001, 10.0)),
    ParamSpec("grid.width", "double", 10.0,
              "Grid extent along grid_frame x (forward) in metres (OccupancyGrid width = "
              "width / resolution cells).", live=True, float_range=(0.01, 10000.0)),
    ParamSpec("grid.height", "double", 10.0,
              "Grid extent along grid_frame y (left) in metres.", live=True,
              float_range=(0.01, 10000.0)),
    ParamSpec("grid.origin_x", "double", 0.0,
              "x of the grid's lower-left corner in grid_frame, metres (0: starts at the robot).",
              live=True, float_range=(-10000.0, 10000.0)),
    ParamSpec("grid.origin_y", "double", None,
              "y of the grid's lower-left corner in grid_frame, metres; unset: -height / 2 "
              "(centred on the robot's x axis).", live=True, float_range=(-10000.0, 10000.0)),
    ParamSpec("grid.max_range", "double", 8.0,
              "Cells farther than this (metres, horizontally from the camera) stay unknown: "
              "far pixels cover large floor areas and the flat-floor error grows with range.",
              live=True, float_range=(0.1, 10000.0)),
    ParamSpec("grid.traversable", "string_array", None,
              "Classes the robot may drive on, by name or id (e.g. [Road, Pavement]); unset or "
              "[''] = the model card's traversable classes. Others are occupied.", live=True),
    ParamSpec("grid.min_confidence", "integer", 0,
              "Cells whose pixel's confidence (0..255, max softmax x 255) is below this stay "
              "unknown; > 0 makes the node compute confidence even when ~/confidence has no "
              "subscriber. 0 = off.", live=True, int_range=(0, 255)),
    ParamSpec("grid.obstacle_mode", "string", "contact",
              "contact: along each viewing ray cells are free up to the first non-traversable "
              "one, which is occupied (where the obstacle stands), and unknown behind it; "
              "projected: every cell takes its pixel's class (obstacles smeared behind).",
              live=True, choices=OBSTACLE_MODES),
)
SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class FloorConfig:
    """The validated floor parameters; the worker reads one snapshot per frame."""

    grid_frame: str
    use_tf: bool
    tf_timeout: float
    pose: CameraPose | None      # from camera_pose; None = not set
    spec: GridSpec
    traversable: tuple[int, ...]
    min_confidence: int
    obstacle_mode: str = "contact"


# ---------------------------------------------------------------------- ROS-free validation


def parse_classes(items: Sequence[str] | None, class_names: Sequence[str],
                  default: Sequence[int]) -> tuple[int, ...]:
    """grid.traversable (names, case-insensitive, or ids) -> sorted ids; empty -> ``default``."""
    ids = parse_class_filter(items, class_names, "grid.traversable")
    return ids or tuple(sorted(int(c) for c in default))


def config_from(values: Mapping[str, Any], class_names: Sequence[str],
                default_traversable: Sequence[int]) -> FloorConfig:
    """Validate the floor parameters together (e.g. the cell count needs width, height and
    resolution); ConfigError names the parameter and the fix."""
    frame = str(values["grid_frame"]).strip()
    if not frame:
        raise ConfigError("grid_frame is empty: name the floor frame of the grid, e.g. "
                          "base_footprint")
    pose = None
    raw_pose = values.get("camera_pose")
    if raw_pose is not None and len(raw_pose) > 0:
        if len(raw_pose) != 6 or not all(math.isfinite(float(v)) for v in raw_pose):
            raise ConfigError(f"camera_pose {list(raw_pose)} must be 6 finite numbers: "
                              "[x, y, z, roll, pitch, yaw] in metres and radians")
        try:
            pose = CameraPose.from_xyz_rpy(*(float(v) for v in raw_pose))
        except ConfigError as e:
            raise ConfigError(f"camera_pose {list(raw_pose)}: {e}") from None
    height = float(values["grid.height"])
    origin_y = values.get("grid.origin_y")
    try:
        spec = GridSpec(resolution=values["grid.resolution"], width_m=values["grid.width"],
                        height_m=height, origin_x=values["grid.origin_x"],
                        origin_y=-height / 2 if origin_y is None else origin_y,
                        max_range_m=values["grid.max_range"], frame_id=frame)
    except ConfigError as e:
        raise ConfigError(f"grid.resolution/width/height: {e}") from None
    min_conf = int(values["grid.min_confidence"])
    if not 0 <= min_conf <= 255:
        raise ConfigError(f"grid.min_confidence = {min_conf} is outside 0..255")
    try:
        mode = check_obstacle_mode(str(values.get("grid.obstacle_mode", "contact")))
    except ConfigError as e:
        raise ConfigError(f"grid.obstacle_mode: {e}") from None
    return FloorConfig(
        grid_frame=frame, use_tf=bool(values["use_tf"]),
        tf_timeout=float(values["tf_timeout"]), pose=pose, spec=spec,
        traversable=parse_classes(values.get("grid.traversable"), class_names,
                                  default_traversable),
        min_confidence=min_conf, obstacle_mode=mode)


def pose_from_transform(transform: Any) -> CameraPose:
    """geometry_msgs/TransformStamped grid_frame <- camera optical frame -> CameraPose."""
    t, q = transform.transform.translation, transform.transform.rotation
    return CameraPose.from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w),
                                                  frame="optical")


def group() -> ParamGroup:
    """The floor grid's parameter group; its check (with the model's class names) is bound by
    the floor grid output once the model is loaded."""
    return ParamGroup("floor_grid", "Floor grid (`~/floor_grid`)", SPECS, prefix="grid",
                      what="floor grid")
