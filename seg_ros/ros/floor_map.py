"""~/floor_map: the floor grids fused over time in a fixed frame (nav_msgs/OccupancyGrid).

An output of its own (seg_ros.ros.outputs.floor_map): it fuses each frame's floor grid (in
grid_frame, the robot's floor frame; made by the floor grid output for it) with the image header.
The robot's pose at the image stamp (grid_frame in ``map.frame``) comes from tf2 while the floor
uses tf (seg_ros.ros.poses), else from
nav_msgs/Odometry on ``odom`` (remappable; its pose is taken as grid_frame's, on the floor),
interpolated from a bounded buffer. An odometry pose no map can use (NaN, inf, beyond any
plausible world, a quaternion far from unit; one near unit is normalised as tf2 does) is refused
where it enters, counted and logged naming the field. Time going back (a simulator reset,
``ros2 bag play --loop``: a stamp more than 1 s older than the newest, tf2_ros's threshold)
clears the pose buffer and the map's decay clock, once per jump, logged. A frame with no pose
within ``map.max_pose_age`` is not fused and is counted. The map (seg_ros.floor.map.FloorMap:
log-odds, decay, rolling window) is published at ``map.rate_hz`` when it changed, reliable and
transient-local (Nav2's StaticLayer, rviz and late subscribers get the last one), stamped with
the last fused image.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_ros.errors import ConfigError
from seg_ros.floor import FloorMap, GridSpec, MapSpec, PoseBuffer
from seg_ros.floor.map import JUMP_BACK_S, checked_pose, pose_problem
from seg_ros.ros import convert
from seg_ros.ros.param_groups import ParamGroup, checked
from seg_ros.ros.params import ParamSpec

TOPIC = "~/floor_map"
ODOM_TOPIC = "odom"
POSE_BUFFER = 400  # odometry messages kept (8 s at 50 Hz)
LOG_THROTTLE_S = 10.0  # one log line per kind of odometry refusal in this many seconds

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("map.frame", "string", "odom",
              "Fixed frame of ~/floor_map (odom: continuous). Odometry must be in it; tf mode "
              "looks up this frame <- grid_frame at each image stamp.", live=True),
    ParamSpec("map.resolution", "double", 0.05, "Map cell edge in metres.", live=True,
              float_range=(0.001, 10.0)),
    ParamSpec("map.width", "double", 20.0, "Map window along map.frame x, metres.", live=True,
              float_range=(0.01, 10000.0)),
    ParamSpec("map.height", "double", 20.0, "Map window along map.frame y, metres.", live=True,
              float_range=(0.01, 10000.0)),
    ParamSpec("map.rolling", "bool", True,
              "The window follows the robot (re-centred in whole cells once the robot is a "
              "quarter window off centre, keeping the overlap).", live=True),
    ParamSpec("map.rate_hz", "double", 2.0,
              "Publication rate of ~/floor_map (only when it changed).", live=True,
              float_range=(0.01, 100.0)),
    ParamSpec("map.half_life", "double", 30.0,
              "Seconds (of image stamps) for a cell's evidence to halve toward unknown; 0 = "
              "never. With the default clamp_max an obstacle nobody sees any more is unknown "
              "after one half-life.", live=True,
              float_range=(0.0, 1e6)),
    ParamSpec("map.hit", "double", 0.85, "Log-odds added per occupied observation.", live=True,
              float_range=(0.01, 10.0)),
    ParamSpec("map.miss", "double", 0.4, "Log-odds removed per free observation.", live=True,
              float_range=(0.01, 10.0)),
    ParamSpec("map.clamp_min", "double", -2.0, "Lowest log-odds (surest free).", live=True,
              float_range=(-20.0, -0.01)),
    ParamSpec("map.clamp_max", "double", 1.2, "Highest log-odds (surest occupied).", live=True,
              float_range=(0.01, 20.0)),
    ParamSpec("map.occupied_threshold", "double", 0.65,
              "Probability at or above which a cell is published 100 (lethal).", live=True,
              float_range=(0.51, 0.99)),
    ParamSpec("map.free_threshold", "double", 0.35,
              "Probability at or below which a cell is published 0 (free).", live=True,
              float_range=(0.01, 0.49)),
    ParamSpec("map.max_pose_age", "double", 0.1,
              "Seconds between the image stamp and the nearest pose (odometry or tf) beyond "
              "which the frame is not fused (counted as floor_map_pose_missing).", live=True,
              float_range=(0.0, 10.0)),
)
SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in SPECS}


def group() -> ParamGroup:
    """The fused map's parameter group (checked by :func:`map_config_from` once the map is
    built)."""
    return ParamGroup("floor_map", "Fused map (`~/floor_map`)", SPECS, prefix="map",
                      what="floor map", check=checked(map_config_from))


@dataclass(frozen=True)
class MapConfig:
    spec: MapSpec
    rate_hz: float
    max_pose_age: float


def map_config_from(values: Mapping[str, Any]) -> MapConfig:
    """Validate the map.* parameters together (ROS-free); ConfigError names the fix."""
    try:
        spec = MapSpec(
            resolution=float(values["map.resolution"]), width_m=float(values["map.width"]),
            height_m=float(values["map.height"]), frame_id=str(values["map.frame"]).strip(),
            hit=float(values["map.hit"]), miss=float(values["map.miss"]),
            clamp_min=float(values["map.clamp_min"]), clamp_max=float(values["map.clamp_max"]),
            half_life_s=float(values["map.half_life"]),
            occupied_threshold=float(values["map.occupied_threshold"]),
            free_threshold=float(values["map.free_threshold"]),
            rolling=bool(values["map.rolling"]))
    except ConfigError as e:
        raise ConfigError(f"map.*: {e}") from None
    return MapConfig(spec, float(values["map.rate_hz"]), float(values["map.max_pose_age"]))


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class MapCounters:
    """Since start; GIL-atomic ints."""

    fused: int = 0
    published: int = 0
    pose_missing: int = 0     # frames not fused: no pose within map.max_pose_age
    odom_received: int = 0
    odom_wrong_frame: int = 0  # odometry messages in another frame than map.frame
    odom_rejected: int = 0    # odometry poses refused (NaN / inf, implausible, bad quaternion)
    time_jumps: int = 0       # stamps that went back (buffers and the decay clock cleared)


class FloorMapOutput:
    """~/floor_map of one node: its parameters, the odometry buffer, the map and its timer.

    ``fuse`` runs on the worker thread, odometry and the timer on the executor: one lock."""

    def __init__(self, node: Any, group: ParamGroup) -> None:
        from nav_msgs.msg import OccupancyGrid, Odometry

        self.node = node
        self.values = dict(group.values)
        try:
            self.cfg = map_config_from(self.values)
        except ConfigError as e:
            raise ConfigError(f"floor map parameter {e}") from None
        self.counters = MapCounters()
        self.poses = PoseBuffer(POSE_BUFFER)
        self.map = FloorMap(self.cfg.spec)
        self._lock = threading.Lock()
        self._stamp: Any = None  # header stamp of the last fused frame
        self._sent = 0  # map.fused at the last publication
        self._odom_frame = ""  # frame_id of the last odometry message
        self.last_error = ""  # why the last frame was not fused ("" = it was)
        self._failing_since = 0.0  # monotonic time of the first unfused frame in a row, 0 = none
        self.odom_error = ""  # why the last refused odometry message was refused
        self._odom_error_at = 0.0  # monotonic time of that refusal
        self._seen_rejected = 0  # odom_rejected at the last health() call
        self._logged: dict[str, float] = {}  # odometry refusal kind -> monotonic time logged
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub = node.create_publisher(OccupancyGrid, TOPIC, latched)
        # best effort matches reliable and best-effort odometry publishers alike; a lost
        # message only widens the interpolation gap
        self.odom_sub = node.create_subscription(
            Odometry, ODOM_TOPIC, self._on_odom,
            QoSProfile(depth=POSE_BUFFER // 8, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.timer = node.create_timer(1.0 / self.cfg.rate_hz, self._publish)
        group.appliers.append(self.apply)

    def subscribed(self) -> bool:
        return self.pub.get_subscription_count() > 0

    def describe(self) -> str:
        s = self.cfg.spec
        return (f"{s.cols}x{s.rows} cells of {s.resolution:g} m in {s.frame_id}"
                f"{' rolling' if s.rolling else ''}, half-life {s.half_life_s:g} s, "
                f"{self.cfg.rate_hz:g} Hz")

    # --- parameters (executor thread) --------------------------------------------------------

    def check(self, mine: Mapping[str, Any]) -> str:
        """Why these map.* values would be refused ("" = they are fine)."""
        try:
            map_config_from({**self.values, **mine})
        except ConfigError as e:
            return str(e)
        return ""

    def apply(self, mine: Mapping[str, Any]) -> None:
        """New map.* values: a new, empty map (its geometry or evidence model changed)."""
        self.values = {**self.values, **mine}
        cfg = map_config_from(self.values)
        with self._lock:
            if cfg.spec != self.cfg.spec:
                self.map, self._stamp, self._sent = FloorMap(cfg.spec), None, 0
            if cfg.rate_hz != self.cfg.rate_hz:
                self.timer.timer_period_ns = int(1e9 / cfg.rate_hz)
                self.timer.reset()
            self.cfg = cfg

    # --- odometry and publication (executor thread) ------------------------------------------

    def _on_odom(self, msg: Any) -> None:
        self.counters.odom_received += 1
        self._odom_frame = msg.header.frame_id
        if msg.header.frame_id and msg.header.frame_id != self.cfg.spec.frame_id:
            self.counters.odom_wrong_frame += 1
            return
        p = msg.pose.pose
        q = p.orientation
        pose, why = checked_pose(p.position.x, p.position.y, (q.x, q.y, q.z, q.w))
        if pose is None:
            self._refuse_odom(why)
            return
        t = stamp_seconds(msg.header.stamp)
        with self._lock:
            newest = self.poses.newest()
            if newest is not None and t < newest - JUMP_BACK_S:
                self.poses.clear()
                self._time_jumped(newest - t, "odometry")
            self.poses.add(t, pose)

    def _refuse_odom(self, why: str) -> None:
        """An unusable odometry pose: counted, remembered for /diagnostics, logged once per
        kind (the field) every LOG_THROTTLE_S."""
        self.counters.odom_rejected += 1
        self.odom_error, self._odom_error_at = why, time.monotonic()
        kind, now = why.split(" ", 1)[0], time.monotonic()
        if now - self._logged.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._logged[kind] = now
            self.node.get_logger().warning(
                f"odometry on {self.odom_sub.topic_name} refused ({self.counters.odom_rejected} "
                f"so far, floor_map_odom_rejected): {why}; the map waits for the next good pose")

    def _time_jumped(self, back_s: float, source: str) -> None:
        """Time went back (under self._lock): the map's decay clock restarts; logged once."""
        self.map.reset_time()
        self.counters.time_jumps += 1
        self.node.get_logger().warning(
            f"floor map: {source} stamps jumped back {back_s:.1f} s (simulator reset or bag "
            "loop?): cleared the pose buffer and the map's time, fusing on")

    def _publish(self) -> None:
        with self._lock:
            if self._stamp is None or self.map.fused == self._sent:
                return
            cells, origin, stamp = self.map.occupancy(), self.map.origin, self._stamp
            self._sent = self.map.fused
        s = self.cfg.spec
        header = Header(stamp=stamp, frame_id=s.frame_id)
        self.pub.publish(convert.occupancy_grid_msg(cells, s.resolution, origin, header))
        self.counters.published += 1

    # --- fusion (worker thread) --------------------------------------------------------------

    def fuse(self, grid: np.ndarray, spec: GridSpec, header: Header,
             tf_pose: Any = None) -> str:
        """Fuse one frame's grid at the robot's pose at its stamp; "" or why it was not.

        ``tf_pose(frame, header) -> (Pose2D or None, why)``: the robot's pose in map.frame at
        the header's stamp (tf2); None: take it from odometry. A frame stamped 0 is not fused."""
        t = stamp_seconds(header.stamp)
        cfg = self.cfg
        if t <= 0:
            pose, why = None, ("the image has no stamp (0): the pose at it is unknown; stamp "
                               "the images (the camera driver's clock)")
        elif tf_pose is not None:
            pose, why = tf_pose(cfg.spec.frame_id, header)
        else:
            with self._lock:
                pose = self.poses.at(t, cfg.max_pose_age)
            why = "" if pose is not None else self._why_no_odometry(t)
        if pose is not None and (bad := pose_problem(pose)):
            pose, why = None, f"{bad}: check the pose source"
        if pose is None:
            self.counters.pose_missing += 1
            self.last_error = why
            self._failing_since = self._failing_since or time.monotonic()
            return why
        with self._lock:
            last = self.map.stamp_s
            if last is not None and t < last - JUMP_BACK_S:  # images first: old poses go
                self.poses.drop_after(t + JUMP_BACK_S)
                self._time_jumped(last - t, "image")
            self.map.fuse(grid, spec, pose, t)
            self._stamp = header.stamp
        self.counters.fused += 1
        self.last_error, self._failing_since = "", 0.0
        return ""

    def _why_no_odometry(self, t: float) -> str:
        cfg, c = self.cfg, self.counters
        if c.odom_received == 0:
            return (f"no odometry has arrived on {self.odom_sub.topic_name}: publish "
                    "nav_msgs/Odometry there (remap odom), or use tf")
        if c.odom_wrong_frame and self._odom_frame != cfg.spec.frame_id:
            return (f"odometry is in frame {self._odom_frame!r} but map.frame is "
                    f"{cfg.spec.frame_id!r}: set map.frame to {self._odom_frame!r}")
        newest = self.poses.newest()
        gap = math.inf if newest is None else t - newest
        if self.odom_error and time.monotonic() - self._odom_error_at < 2.0 + cfg.max_pose_age:
            return (f"odometry on {self.odom_sub.topic_name} refused "
                    f"(floor_map_odom_rejected={c.odom_rejected}): {self.odom_error}")
        return (f"no odometry pose within map.max_pose_age = {cfg.max_pose_age:g} s of the "
                f"image stamp (newest pose {gap:+.3f} s from it): check the clocks and rates "
                "or raise map.max_pose_age")

    def health(self, period_missing: int, stall_s: float) -> tuple[int, str]:
        """The map's watchdog, while subscribed: ERROR when every frame for more than
        2 x ``stall_s`` seconds went unfused, WARN when some of this period's did
        (``period_missing``); the message names the reason."""
        rejected, self._seen_rejected = (self.counters.odom_rejected - self._seen_rejected,
                                         self.counters.odom_rejected)
        if not self.subscribed():
            return 0, ""
        if not self.last_error:
            return (1, f"floor map: {rejected} odometry pose(s) refused "
                    f"(floor_map_odom_rejected={self.counters.odom_rejected}): "
                    f"{self.odom_error}") if rejected > 0 else (0, "")
        failing = time.monotonic() - self._failing_since
        if failing > 2 * stall_s:
            return 2, f"floor map: no frame fused for {failing:.1f} s: {self.last_error}"
        if period_missing > 0:
            return 1, (f"floor map: {period_missing} frame(s) not fused "
                       f"(floor_map_pose_missing={self.counters.pose_missing}): "
                       f"{self.last_error}")
        return 0, ""

    def diagnostics_values(self) -> dict[str, str]:
        c = self.counters
        return {"floor_map_frames_fused": str(c.fused),
                "floor_maps_published": str(c.published),
                "floor_map_pose_missing": str(c.pose_missing),
                "floor_map_odom_received": str(c.odom_received),
                "floor_map_odom_wrong_frame": str(c.odom_wrong_frame),
                "floor_map_odom_rejected": str(c.odom_rejected),
                "floor_map_time_jumps": str(c.time_jumps),
                "floor_map_recentres": str(self.map.recentres)}
