"""The single camera's floor grid: labels at the camera's size -> nav_msgs/OccupancyGrid on
~/floor_grid (seg_ros.ros.outputs.floor_grid plugs it into the node's outputs).

Per frame (on the node's worker thread, only when the grid or the fused map is wanted and a
camera_info has arrived): the latest CameraInfo -> :class:`~seg_ros.floor.CameraModel`; the
camera pose from tf2 at the image stamp (seg_ros.ros.poses) or from the ``camera_pose``
parameter; :class:`~seg_ros.floor.GroundProjector` (its lookup table is rebuilt only when the
camera, the pose or the grid spec really change; obstacles at their ground contact unless
grid.obstacle_mode is projected); with RGB-D the depth input marks the grid (``grid.source``).
A frame whose grid cannot be made (no tf, camera_info of another image size) is skipped,
counted and logged (throttled); the node keeps serving. The parameters are the floor grid
group's (seg_ros.ros.floor_config), all live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_ros.errors import ConfigError
from seg_ros.floor import CameraModel, CameraPose, GroundProjector
from seg_ros.floor.lut_cache import LutCache
from seg_ros.ros import convert
from seg_ros.ros.floor_config import EXAMPLE_CAMERA_POSE, FloorConfig, config_from
from seg_ros.ros.param_groups import ParamGroup, checked

TOPIC = "~/floor_grid"
LOG_THROTTLE_S = 10.0
INLINE_BUILD_S = 0.05  # lookup tables that build faster than this are built on the worker
RECENT_S = 5.0  # a grid made this recently still counts for health (empty grid: ERROR)
WARN, ERROR = 1, 2  # diagnostic_msgs/DiagnosticStatus levels


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
    """~/floor_grid (nav_msgs/OccupancyGrid, reliable, depth 1) of the single camera.

    ``group``: the floor grid parameters; ``poses``: tf (seg_ros.ros.poses.PoseSource);
    ``depth``: the depth input (grid.source) or None; ``card``: class names and traversable
    defaults. Raises ConfigError when a floor parameter is invalid at start.
    """

    def __init__(self, node: Any, group: ParamGroup, poses: Any, depth: Any, card: Any) -> None:
        from nav_msgs.msg import OccupancyGrid

        self.node, self.group, self.poses, self.depth = node, group, poses, depth
        self.log = node.get_logger()
        self._class_names, self._default_trav = tuple(card.class_names), tuple(card.traversable)
        try:
            self._cfg = config_from(group.values, self._class_names, self._default_trav)
        except ConfigError as e:
            raise ConfigError(f"floor grid parameter {e}") from None
        self.projector = GroundProjector(self._cfg.spec)
        self.luts = LutCache(keep=2)  # built beside the worker; two cameras flip = two hits
        self.counters = FloorCounters()
        self._blocked = ""  # why the last frame made no grid ("" = it made one)
        self._empty = False  # the last grid had no visible cell
        self._made_at = 0.0  # monotonic time of the last grid made
        self._seen_errors = 0  # error counters' sum at the last health() call
        self._camera: tuple[Any, CameraModel | None] | None = None  # (CameraInfo, its model)
        self._camera_error = ""  # why the latest camera_info cannot be used
        self._logged: dict[str, float] = {}  # kind of skip reason -> when it was last logged
        self.pub = node.create_publisher(
            OccupancyGrid, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        group.check = checked(self._config)  # the model's classes are read at each check
        group.appliers.append(self._apply)
        self.log.info(f"floor grid on {self.pub.topic_name}: {self._describe(self._cfg)}")
        if self.pose_source() == "camera_pose" and np.allclose(
                list(group.values["camera_pose"]), EXAMPLE_CAMERA_POSE, rtol=0.0, atol=1e-9):
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
        if self.poses.tf_active(cfg.use_tf):
            return "tf"
        return "camera_pose" if cfg.pose is not None else "none"

    def _config(self, values: Any) -> FloorConfig:
        return config_from(values, self._class_names, self._default_trav)

    def _apply(self, changed: Any) -> None:
        cfg = self._config(self.group.values)
        if cfg.use_tf:
            self.poses.start_tf()
        self._cfg = cfg  # one reference swap: the worker reads it once per frame
        self.log.info(f"floor grid: {self._describe(cfg)}")

    def set_card(self, card: Any) -> None:
        """A new model after a managed node's cleanup and configure: its class names and
        traversable classes (the parameters stay as they are)."""
        self._class_names, self._default_trav = tuple(card.class_names), tuple(card.traversable)
        self._cfg = config_from(self.group.values, self._class_names, self._default_trav)

    # --- worker thread -----------------------------------------------------------------------

    def needs_confidence(self) -> bool:
        """True when grid.min_confidence > 0: the node must compute confidence for the grid."""
        return self._cfg.min_confidence > 0

    def ready(self, camera_info: Any, info_topic: str) -> bool:
        """A camera_info has arrived and a pose source exists (else why is remembered)."""
        if camera_info is None:
            return self._skip(f"no camera_info has arrived on {info_topic}", warn=False)
        if self.pose_source() == "none":
            return self._skip("there is no camera pose: set camera_pose [x, y, z, roll, pitch, "
                              "yaw] (or use_tf with tf2_ros installed)")
        return True

    def _skip(self, why: str, warn: bool = True) -> bool:
        """No grid for this frame: remember why (the watchdog names it) and log it."""
        self._blocked = why
        self.log_once(why, warn)
        return False

    def log_once(self, why: str, warn: bool = True, what: str = "") -> None:
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
        if self.luts.status.last_error:
            return ERROR, f"floor grid lookup table failed: {self.luts.status.last_error}"
        if self._empty and time.monotonic() - self._made_at < RECENT_S:
            return ERROR, ("floor grid has no visible cell: the camera sees none of the grid "
                           "(check camera_pose / tf, camera_info and grid.*); every cell unknown")
        if new > 0:
            bad = {k: v for k, v in self.diagnostics_values().items()
                   if k.endswith(("_failures", "_mismatches", "_errors")) and v != "0"}
            counts = ", ".join(f"{k}={v}" for k, v in bad.items())
            return WARN, f"floor grid skipped frames ({counts})" + (
                f": {self._blocked}" if self._blocked else "")
        return 0, ""

    def close(self) -> None:
        self.luts.close()

    def __call__(self, labels: np.ndarray, header: Header, camera_info: Any,
                 confidence: np.ndarray | None = None) -> np.ndarray | None:
        """This frame's grid, published while ~/floor_grid has a subscriber; None when it
        cannot be made (why is remembered, counted and logged)."""
        cfg = self._cfg
        cells = self._grid(cfg, labels, header, camera_info, confidence)
        if cells is None:
            return None
        s = cfg.spec
        if self.pub.get_subscription_count() > 0:
            out_header = Header(stamp=header.stamp, frame_id=cfg.grid_frame)
            self.pub.publish(convert.occupancy_grid_msg(cells, s.resolution,
                                                        (s.origin_x, s.origin_y), out_header))
            self.counters.published += 1
        self._blocked, self._made_at = "", time.monotonic()
        return cells

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
        pose = self._tf_pose(cfg, header) if self.poses.tf_active(cfg.use_tf) else cfg.pose
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
        if self.depth is not None:  # RGB-D, grid.source: seg_ros.ros.depth_hook
            cells = self.depth.floor_cells(cells, lut, labels, header, cfg.traversable)
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

    # --- for the cameras of a node with several (seg_ros.ros.camera_floor) -------------------

    def config(self) -> FloorConfig:
        """The floor configuration in force (one for every camera)."""
        return self._cfg

    def tf_pose(self, header: Header) -> CameraPose | None:
        """The camera's pose from tf at the image stamp (grid_frame <- header.frame_id); None
        when tf is off or the lookup failed (counted)."""
        cfg = self._cfg
        return self._tf_pose(cfg, header) if self.poses.tf_active(cfg.use_tf) else None

    def _tf_pose(self, cfg: FloorConfig, header: Header) -> CameraPose | None:
        pose, why = self.poses.camera_pose(cfg.grid_frame, header)
        if pose is None:
            self.counters.tf_failures += 1
            self._skip(why)
        return pose

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
                "floor_obstacle_mode": self._cfg.obstacle_mode}
