"""~/floor_grid and ~/floor_map: the traversable-floor occupancy grid per frame and fused over
time (seg_ros.ros.floor_map), plugged into SegmentationNode as its ``FloorHook``.

Per frame (on the node's worker thread, only when ~/floor_grid or ~/floor_map has a subscriber
and a camera_info has arrived): the latest CameraInfo -> :class:`~seg_ros.floor.CameraModel`; the
camera pose from tf2 at the image stamp (grid_frame <- image header.frame_id, the optical frame)
or from the ``camera_pose`` parameter; :class:`~seg_ros.floor.GroundProjector` (its lookup table
is rebuilt only when the camera, the pose or the grid spec really change; obstacles at their
ground contact unless grid.obstacle_mode is projected) -> nav_msgs/OccupancyGrid with the image
stamp, in ``grid_frame``; the same grid is fused into ~/floor_map at the robot's pose. A frame
whose grid cannot be made (no tf, camera_info of another image size) is skipped, counted and
logged (throttled); the node keeps serving.

Parameters (all live: ``ros2 param set`` rebuilds the grid; an invalid set is refused with the
reason) are in :data:`SPECS`; :func:`config_from` is their ROS-free validation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_ros.errors import ConfigError
from seg_ros.floor import OBSTACLE_MODES, CameraModel, CameraPose, GridSpec, GroundProjector
from seg_ros.floor.grid import check_obstacle_mode
from seg_ros.floor.lut_cache import LutCache
from seg_ros.floor.map import Pose2D
from seg_ros.ros import convert, floor_map
from seg_ros.ros.compat import add_parameter_callbacks
from seg_ros.ros.floor_map import FloorMapOutput
from seg_ros.ros.floor_params import declare
from seg_ros.ros.params import ParamSpec, parse_class_filter

try:  # tf2 is optional: without it the pose comes from the camera_pose parameter
    import tf2_ros
except ImportError:  # pragma: no cover - depends on the install
    tf2_ros = None

TOPIC = "~/floor_grid"
# config/camvid.yaml's camera_pose: the CamVid car's camera, not a robot's (a WARN at start)
EXAMPLE_CAMERA_POSE = (0.0, 0.0, 1.2, 0.0, 0.03, 0.0)
LOG_THROTTLE_S = 10.0
INLINE_BUILD_S = 0.05  # lookup tables that build faster than this are built on the worker
WARN, ERROR = 1, 2  # diagnostic_msgs/DiagnosticStatus levels

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


# ------------------------------------------------------------------------------- the hook


@dataclass
class FloorCounters:
    """Since start; the worker writes, the diagnostics timer reads (GIL-atomic ints)."""

    published: int = 0
    tf_failures: int = 0
    size_mismatches: int = 0
    camera_info_errors: int = 0
    lut_waits: int = 0       # frames without a grid while its lookup table was being built
    empty_grids: int = 0     # grids in which the camera sees no cell (all unknown)


class FloorGrid:
    """The node's FloorHook: publishes ~/floor_grid (nav_msgs/OccupancyGrid, reliable, depth 1).

    ``node`` is the SegmentationNode: it provides ``card`` (class names, traversable defaults),
    ``camera_info`` (the latest CameraInfo) and the ROS node API. Raises ConfigError when a
    floor parameter is invalid at start.
    """

    def __init__(self, node: Any) -> None:
        from nav_msgs.msg import OccupancyGrid

        self.node = node
        self.log = node.get_logger()
        card = node.card
        self._class_names, self._default_trav = tuple(card.class_names), tuple(card.traversable)
        values = declare(node, SPECS, "floor grid")
        try:
            self._cfg = config_from(values, self._class_names, self._default_trav)
        except ConfigError as e:
            raise ConfigError(f"floor grid parameter {e}") from None
        self._values = values
        self.projector = GroundProjector(self._cfg.spec)
        self.luts = LutCache(keep=2)  # built beside the worker; two cameras flip = two hits
        self.counters = FloorCounters()
        self.map = FloorMapOutput(node)  # ~/floor_map: its parameters, odometry, timer
        self._seen_missing = 0  # map frames without a pose at the last health() call
        self._blocked = ""  # why the last frame made no grid ("" = it made one)
        self._empty = False  # the last grid had no visible cell
        self._seen_errors = 0  # error counters' sum at the last health() call
        self._camera: tuple[Any, CameraModel | None] | None = None  # (CameraInfo, its model)
        self._camera_error = ""  # why the latest camera_info cannot be used
        self._logged: dict[str, float] = {}  # kind of skip reason -> when it was last logged
        self.tf_buffer: Any = None
        self._tf_listener: Any = None
        if self._cfg.use_tf:
            self._start_tf()
        self.pub = node.create_publisher(
            OccupancyGrid, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        add_parameter_callbacks(node, self._check_params, self._apply_params)
        self.log.info(f"floor grid on {self.pub.topic_name}: {self._describe(self._cfg)}; "
                      f"fused on {self.map.pub.topic_name}: {self.map.describe()}")
        if self.pose_source() == "camera_pose" and np.allclose(
                list(values["camera_pose"]), EXAMPLE_CAMERA_POSE, rtol=0.0, atol=1e-9):
            self.log.warning(
                "the floor outputs (~/floor_grid, ~/floor_map) use config/camvid.yaml's "
                "example camera_pose, the CamVid car's camera (1.2 m up, pitched 0.03 rad): on "
                "a robot they come from a made-up pose. Use config/robot.yaml (use_tf: true) or "
                "set camera_pose to your camera's mount")

    # --- parameters (executor thread) --------------------------------------------------------

    def _describe(self, cfg: FloorConfig) -> str:
        s = cfg.spec
        return (f"{s.cols}x{s.rows} cells of {s.resolution:g} m in {cfg.grid_frame}, origin "
                f"({s.origin_x:g}, {s.origin_y:g}), range {s.max_range_m:g} m, obstacles "
                f"{cfg.obstacle_mode}, pose from {self.pose_source(cfg)}")

    def pose_source(self, cfg: FloorConfig | None = None) -> str:
        """'tf', 'camera_pose' or 'none' (no pose: no grid)."""
        cfg = cfg or self._cfg
        if self._tf_active(cfg):
            return "tf"
        return "camera_pose" if cfg.pose is not None else "none"

    def _tf_active(self, cfg: FloorConfig) -> bool:
        return cfg.use_tf and self.tf_buffer is not None

    def _start_tf(self) -> None:
        if tf2_ros is None:
            self.log.warning("use_tf is true but tf2_ros is not importable: the floor grid "
                             "uses the camera_pose parameter (install tf2_ros, or set "
                             "use_tf:=false to silence this)")
            return
        if self.tf_buffer is None:
            self.tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self.tf_buffer, self.node,
                                                          spin_thread=False)

    def _check_params(self, changed: list[Any]) -> SetParametersResult:
        mine = {p.name: p.value for p in changed if p.name in SPEC_BY_NAME}
        if mine:
            try:
                config_from({**self._values, **mine}, self._class_names, self._default_trav)
            except ConfigError as e:
                return SetParametersResult(successful=False, reason=str(e))
        why = self.map.check({p.name: p.value for p in changed
                              if p.name in floor_map.SPEC_BY_NAME})
        return SetParametersResult(successful=not why, reason=why)

    def _apply_params(self, changed: list[Any]) -> None:
        for_map = {p.name: p.value for p in changed if p.name in floor_map.SPEC_BY_NAME}
        if for_map:
            self.map.apply(for_map)
            self.log.info(f"floor map: {self.map.describe()}")
        mine = {p.name: p.value for p in changed if p.name in SPEC_BY_NAME}
        if not mine:
            return
        self._values = {**self._values, **mine}
        cfg = config_from(self._values, self._class_names, self._default_trav)
        if cfg.use_tf:
            self._start_tf()
        self._cfg = cfg  # one reference swap: the worker reads it once per frame
        self.log.info(f"floor grid: {self._describe(cfg)}")

    # --- FloorHook (worker thread) -----------------------------------------------------------

    def needs_confidence(self) -> bool:
        """True when grid.min_confidence > 0: the node must compute confidence for the grid."""
        return self._cfg.min_confidence > 0

    def subscribed(self) -> bool:
        """~/floor_grid or ~/floor_map has a subscriber (the watchdog's "floor_grid" output: the
        per-frame grid both need; the map's own failures are in health())."""
        return self.pub.get_subscription_count() > 0 or self.map.subscribed()

    def wanted(self) -> bool:
        """A floor output has a subscriber, a camera_info has arrived and a pose source exists."""
        if not self.subscribed():
            return False
        if self.node.camera_info is None:
            return self._skip(f"no camera_info has arrived on {self.node.info_sub.topic_name}",
                              warn=False)
        if self.pose_source() == "none":
            return self._skip("there is no camera pose: set camera_pose [x, y, z, roll, pitch, "
                              "yaw] (or use_tf with tf2_ros installed)")
        return True

    def _skip(self, why: str, warn: bool = True) -> bool:
        """No grid for this frame: remember why (the watchdog names it) and log it."""
        self._blocked = why
        self._log(why, warn)
        return False

    def _log(self, why: str, warn: bool = True, what: str = "") -> None:
        """Log why a floor output missed a frame, at most once per LOG_THROTTLE_S for each kind
        of reason (its first three words)."""
        kind, now = " ".join(why.split()[:3]), time.monotonic()
        if now - self._logged.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._logged[kind] = now
            line = f"{what or f'no floor grid on {self.pub.topic_name}'}: {why}"
            if warn:  # rclpy binds one severity to each logging call site
                self.log.warning(line)
            else:
                self.log.info(line)

    def stall_reason(self) -> str:
        """Why no grid came out lately ("" when the last frame made one)."""
        return self._blocked

    def health(self) -> tuple[int, str]:
        """(level, message) of this diagnostics period: ERROR while the camera sees no cell of
        the grid or a lookup table cannot be built, WARN when frames lost their grid."""
        c = self.counters
        errors = c.tf_failures + c.size_mismatches + c.camera_info_errors
        new, self._seen_errors = errors - self._seen_errors, errors
        missing = self.map.counters.pose_missing
        stall_s = float(getattr(getattr(self.node, "live", None), "stall_s", 2.0))
        map_health = self.map.health(missing - self._seen_missing, stall_s)
        self._seen_missing = missing
        if self.luts.status.last_error:
            return ERROR, f"floor grid lookup table failed: {self.luts.status.last_error}"
        if self._empty and self.subscribed():
            return ERROR, ("floor grid has no visible cell: the camera sees none of the grid "
                           "(check camera_pose / tf, camera_info and grid.*); every cell unknown")
        if new > 0:
            bad = {k: v for k, v in self.diagnostics_values().items()
                   if k.endswith(("_failures", "_mismatches", "_errors")) and v != "0"}
            counts = ", ".join(f"{k}={v}" for k, v in bad.items())
            return WARN, f"floor grid skipped frames ({counts})" + (
                f": {self._blocked}" if self._blocked else "")
        return map_health

    def close(self) -> None:
        self.luts.close()

    def set_card(self, card: Any) -> None:
        """A new model after a managed node's cleanup and configure: its class names and
        traversable classes (the parameters stay as they are)."""
        self._class_names, self._default_trav = tuple(card.class_names), tuple(card.traversable)
        self._cfg = config_from(self._values, self._class_names, self._default_trav)

    def __call__(self, labels: np.ndarray, header: Header, camera_info: Any,
                 confidence: np.ndarray | None = None) -> None:
        cfg = self._cfg
        cells = self._grid(cfg, labels, header, camera_info, confidence)
        if cells is None:
            return
        s = cfg.spec
        if self.pub.get_subscription_count() > 0:
            out_header = Header(stamp=header.stamp, frame_id=cfg.grid_frame)
            self.pub.publish(convert.occupancy_grid_msg(cells, s.resolution,
                                                        (s.origin_x, s.origin_y), out_header))
            self.counters.published += 1
        self._blocked = ""
        self.node.watchdog.published("floor_grid")  # the grid was made (map: see health())
        if self.map.subscribed():
            why = self.map.fuse(cells, s, header, self.map_tf_pose())
            if why:
                self._log(why, what=f"frame not fused into {self.map.pub.topic_name}")

    def _grid(self, cfg: FloorConfig, labels: np.ndarray, header: Header, camera_info: Any,
              confidence: np.ndarray | None) -> np.ndarray | None:
        """This frame's grid (the projector's buffer), or None when it cannot be made (why is
        remembered, counted and logged)."""
        camera = self._camera_model(camera_info)
        if camera is None:
            return None
        h, w = labels.shape[:2]
        if (h, w) != (camera.image_height, camera.image_width):
            self.counters.size_mismatches += 1
            self._skip(f"camera_info describes a {camera.image_width}x{camera.image_height} "
                       f"image (size, ROI, binning) but the image is {w}x{h}; publish the "
                       "camera_info of this image stream")
            return None
        pose = self._tf_pose(cfg, header) if self._tf_active(cfg) else cfg.pose
        if pose is None:
            return None
        lut = self.luts.get(camera, pose, cfg.spec, inline_s=INLINE_BUILD_S)
        if lut is None:
            self._lut_pending()
            return None
        proj = self.projector
        proj.use_lut(lut)
        proj.obstacle_mode = cfg.obstacle_mode
        if cfg.min_confidence > 0 and confidence is None:
            self.log.warning("grid.min_confidence is set but the model gives no confidence: "
                             "ignored", throttle_duration_sec=LOG_THROTTLE_S)
        cells = proj.update(labels, cfg.traversable, confidence, cfg.min_confidence)
        depth = getattr(self.node, "depth", None)  # RGB-D, grid.source: seg_ros.ros.depth_hook
        if depth is not None:
            cells = depth.floor_cells(cells, lut, labels, header, cfg.traversable)
        self._empty = lut.cells.size == 0
        if self._empty:
            self.counters.empty_grids += 1
            self.log.error("floor grid has no visible cell: the camera sees none of the grid "
                           "(check camera_pose / tf, camera_info and grid.*)",
                           throttle_duration_sec=LOG_THROTTLE_S)
        return cells

    def _lut_pending(self) -> None:
        """The frame's table is being built beside the worker: no grid for it (counted)."""
        st = self.luts.status
        self.counters.lut_waits += 1
        if st.last_error:
            self._skip(f"the grid's lookup table cannot be built: {st.last_error}")
            return
        busy = time.monotonic() - st.building_since if st.building_since else 0.0
        self._blocked = (f"lookup table for a new camera, pose or grid being built ({busy:.1f} s "
                         f"so far; {st.builds} built since start, last in {st.last_build_s:.2f} "
                         "s); a camera_info or pose that keeps changing keeps it rebuilding")

    def _camera_model(self, msg: Any) -> CameraModel | None:
        """The CameraModel of ``msg``, converted once per message (None: invalid, logged)."""
        if self._camera is None or self._camera[0] is not msg:
            try:
                model, self._camera_error = CameraModel.from_camera_info(msg), ""
            except (ConfigError, ValueError, TypeError, OverflowError) as e:
                model, self._camera_error = None, f"camera_info unusable: {e}"
            self._camera = (msg, model)
        if self._camera[1] is None:
            self.counters.camera_info_errors += 1
            self._skip(self._camera_error)
        return self._camera[1]

    def _tf_pose(self, cfg: FloorConfig, header: Header) -> CameraPose | None:
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            stamp = Time.from_msg(header.stamp)
        except ValueError as e:  # rclpy refuses a negative stamp: this frame's grid only
            self.counters.tf_failures += 1
            self._skip(f"the image stamp {header.stamp.sec}.{header.stamp.nanosec:09d} s cannot "
                       f"be looked up in tf ({e}): stamp the images with the camera's clock")
            return None
        try:
            tf = self.tf_buffer.lookup_transform(
                cfg.grid_frame, header.frame_id, stamp, timeout=Duration(seconds=cfg.tf_timeout))
            return pose_from_transform(tf)
        except (tf2_ros.TransformException, ConfigError) as e:
            self.counters.tf_failures += 1
            self._skip(f"transform {cfg.grid_frame} <- {header.frame_id or '(empty)'} at the "
                       f"image stamp: {e} (publish the camera's tf, or set use_tf:=false and "
                       "camera_pose)")
            return None

    def map_tf_pose(self) -> Any:
        """What FloorMapOutput.fuse takes as ``tf_pose``: the tf lookup while the floor uses tf
        (every camera's map pose then comes from tf), None: the map's pose is odometry's."""
        return self._map_tf_pose if self._tf_active(self._cfg) else None

    def _map_tf_pose(self, frame: str, header: Header) -> tuple[Pose2D | None, str]:
        """The robot's floor frame (grid_frame) in ``frame`` at the image stamp, from tf2.

        tf2 interpolates inside its buffer; an image newer than the newest transform (tf lags
        the camera) takes the newest when it is within map.max_pose_age of the stamp, the rule
        odometry follows. fuse() calls this only with a stamp > 0."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        cfg = self._cfg
        try:
            tf = self.tf_buffer.lookup_transform(frame, cfg.grid_frame,
                                                 Time.from_msg(header.stamp),
                                                 timeout=Duration(seconds=cfg.tf_timeout))
        except tf2_ros.TransformException as e:
            tf, why = self._newest_map_tf(frame, header, e)
            if tf is None:
                return None, why
        t, q = tf.transform.translation, tf.transform.rotation
        return Pose2D.from_quaternion(t.x, t.y, (q.x, q.y, q.z, q.w)), ""

    def _newest_map_tf(self, frame: str, header: Header, error: Exception) -> tuple[Any, str]:
        """The newest transform frame <- grid_frame when the image is at most map.max_pose_age
        past it, else (None, why naming the lookup's error)."""
        cfg, max_age = self._cfg, self.map.cfg.max_pose_age
        why = (f"transform {frame} <- {cfg.grid_frame} at the image stamp: {error} (publish "
               "odometry's tf, or set use_tf:=false to use odometry)")
        if not isinstance(error, tf2_ros.ExtrapolationException):
            return None, why
        from rclpy.time import Time

        try:
            newest = self.tf_buffer.lookup_transform(frame, cfg.grid_frame, Time())
        except tf2_ros.TransformException:
            return None, why
        gap = floor_map.stamp_seconds(header.stamp) - floor_map.stamp_seconds(newest.header.stamp)
        if 0.0 <= gap <= max_age:
            return newest, ""
        return None, (f"no tf pose {frame} <- {cfg.grid_frame} within map.max_pose_age = "
                      f"{max_age:g} s of the image stamp (newest {-gap:+.3f} s from it; {error})"
                      ": check the clocks and tf rates or raise map.max_pose_age")

    # --- for the cameras of a node with several (seg_ros.ros.camera_floor) -------------------

    def config(self) -> FloorConfig:
        """The floor configuration in force (one for every camera)."""
        return self._cfg

    def tf_pose(self, header: Header) -> CameraPose | None:
        """The camera's pose from tf at the image stamp (grid_frame <- header.frame_id); None
        when tf is off or the lookup failed (counted)."""
        cfg = self._cfg
        return self._tf_pose(cfg, header) if self._tf_active(cfg) else None

    # --- diagnostics -------------------------------------------------------------------------

    def diagnostics_values(self) -> dict[str, str]:
        """Key/values the node merges into its /diagnostics status."""
        c = self.counters
        return {"floor_grids_published": str(c.published),
                "floor_tf_failures": str(c.tf_failures),
                "floor_lut_builds": str(self.luts.status.builds),
                "floor_lut_last_build_s": f"{self.luts.status.last_build_s:.3f}",
                "floor_lut_waits": str(c.lut_waits),
                "floor_empty_grids": str(c.empty_grids),
                "floor_size_mismatches": str(c.size_mismatches),
                "floor_camera_info_errors": str(c.camera_info_errors),
                "floor_pose_source": self.pose_source(),
                "floor_obstacle_mode": self._cfg.obstacle_mode,
                "floor_map_pose_source": "tf" if self._tf_active(self._cfg) else "odometry",
                **self.map.diagnostics_values()}
