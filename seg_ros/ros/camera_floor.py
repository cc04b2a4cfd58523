"""Floor grids of a node with several cameras (seg_ros.ros.cameras).

Camera ``c`` gets its own grid on ``~/c/floor_grid`` (nav_msgs/OccupancyGrid in grid_frame, the
frame's stamp), from its own camera_info and pose. The pose rule is the single camera's: while
the floor uses tf (``use_tf`` true and tf2_ros importable) every camera's pose is tf's at the
image stamp (grid_frame <- the image's header.frame_id) and the robot's pose for the fused map is
tf's (map.frame <- grid_frame); otherwise camera ``c``'s pose is its ``c.camera_pose`` parameter
([x, y, z, roll, pitch, yaw], m and rad, camera in grid_frame) and the map's pose odometry's.
A ``c.camera_pose`` set while tf is in use is said once at start and not used. Every other floor
parameter (grid.*, grid_frame, obstacle mode, traversable classes) is the node's one floor
configuration (seg_ros.ros.floor_config), so all grids share one GridSpec.

``grid.merge: true`` merges the latest grid of every camera (those within ``MERGE_MAX_AGE_S``
of stamp time) into one ``~/floor_grid``: occupied where any camera sees an obstacle, else free
where any sees floor, else unknown. Each camera's grid is fused into ``~/floor_map`` (the fused
map, an output of its own) as its own observation at its own stamp.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_ros.errors import ConfigError
from seg_ros.floor import CameraModel, CameraPose, GroundProjector
from seg_ros.floor.lut_cache import LutCache
from seg_ros.ros import convert
from seg_ros.ros.param_groups import ParamGroup
from seg_ros.ros.params import ParamSpec

LOG_THROTTLE_S = 10.0
MERGE_MAX_AGE_S = 1.0  # stamp time: older grids of other cameras are left out of the merge
INLINE_BUILD_S = 0.05  # as the single camera's grid: quick tables are built on the worker
FREE, OCCUPIED, UNKNOWN = 0, 100, -1


def merge_grids(grids: Sequence[np.ndarray]) -> np.ndarray:
    """Several cameras' grids of one GridSpec -> one: occupied where any is occupied, else free
    where any is free, else unknown (an obstacle seen by one camera is never erased by another
    that sees the floor around it)."""
    stack = np.stack(grids)
    out = np.full(stack.shape[1:], UNKNOWN, np.int8)
    out[(stack == FREE).any(axis=0)] = FREE
    out[(stack == OCCUPIED).any(axis=0)] = OCCUPIED
    return out


def camera_pose_from(value: Sequence[float] | None, name: str) -> CameraPose | None:
    """``c.camera_pose`` -> CameraPose (None when unset); ConfigError naming the fix."""
    if value is None or len(value) == 0:
        return None
    if len(value) != 6 or not all(math.isfinite(float(v)) for v in value):
        raise ConfigError(f"{name} {list(value)} must be 6 finite numbers: [x, y, z, roll, "
                          "pitch, yaw] in metres and radians")
    return CameraPose.from_xyz_rpy(*(float(v) for v in value))


@dataclass
class _CameraGrid:
    """One camera's grid state: publisher, pose, projector, tables, latest grid."""

    pub: Any
    pose: CameraPose | None
    projector: Any = None
    luts: LutCache = field(default_factory=lambda: LutCache(keep=2))
    model: tuple[Any, CameraModel | None] | None = None  # (CameraInfo, its model)
    latest: tuple[float, np.ndarray] | None = None       # (stamp s, cells)
    published: int = 0
    skipped: str = ""                                    # why the last frame made no grid


def camera_specs(cameras: Sequence[str]) -> list[ParamSpec]:
    """The several-camera floor parameters: each camera's pose, and whether grids merge."""
    specs = [ParamSpec(f"{c}.camera_pose", "double_array", None,
                       f"Pose of camera {c} in grid_frame: [x, y, z, roll, pitch, yaw] "
                       "(m, rad), used when use_tf is false (or tf2_ros is absent); with tf "
                       "the pose is tf's at the image stamp. Read at start.",
                       read_only=True) for c in cameras]
    specs.append(ParamSpec("grid.merge", "bool", False,
                           "Merge the cameras' grids into ~/floor_grid (occupied wins).",
                           live=True))
    return specs


def group(cameras: Sequence[str]) -> ParamGroup:
    """The several-camera floor parameters as a group (declared when ``cameras`` is set)."""
    return ParamGroup("cameras", "Several cameras", tuple(camera_specs(cameras)),
                      what="floor grid", when="with `cameras` set")


class CameraFloorGrids:
    """~/c/floor_grid for each camera, the merged ~/floor_grid and the fused map's input."""

    def __init__(self, node: Any, cameras: Sequence[str], floor: Any, group: ParamGroup) -> None:
        from nav_msgs.msg import OccupancyGrid

        self.floor, self.lock, self.group = floor, threading.Lock(), group
        values = group.values
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.grids = {c: _CameraGrid(node.create_publisher(OccupancyGrid, f"~/{c}/floor_grid",
                                                           qos),
                                     camera_pose_from(values[f"{c}.camera_pose"],
                                                      f"{c}.camera_pose"))
                      for c in cameras}
        self.node = node
        ignored = [c for c, g in self.grids.items() if g.pose is not None]
        if ignored and floor.pose_source() == "tf":
            node.get_logger().warning(
                f"{', '.join(f'{c}.camera_pose' for c in ignored)} set, but use_tf is true: "
                "every camera's pose comes from tf at its image stamp (camera_pose is used "
                "with use_tf:=false)")

    def merging(self) -> bool:
        return bool(self.group.values["grid.merge"])

    def listened(self, camera: str) -> bool:
        """Somebody listens to this camera's grid or the merged grid."""
        return self.grids[camera].pub.get_subscription_count() > 0 or (
            self.merging() and self.floor.pub.get_subscription_count() > 0)

    def ready(self, camera: str, camera_info: Any) -> bool:
        """The camera has a camera_info and a pose source (else why is remembered)."""
        g, f = self.grids[camera], self.floor
        if camera_info is None:
            g.skipped = f"no camera_info has arrived on {camera}/camera_info"
            return False
        if g.pose is None and f.pose_source() != "tf":
            g.skipped = f"no pose: set {camera}.camera_pose (or use_tf with tf2_ros)"
            return False
        return True

    def __call__(self, camera: str, labels: np.ndarray, header: Header, camera_info: Any,
                 confidence: np.ndarray | None) -> np.ndarray | None:
        """This camera's grid from its labels at the camera's size, published and merged (None
        when it cannot be made)."""
        cells = self._grid(camera, labels, header, camera_info, confidence)
        if cells is None:
            return None
        g, cfg = self.grids[camera], self.floor.config()
        out = Header(stamp=header.stamp, frame_id=cfg.grid_frame)
        s = cfg.spec
        if g.pub.get_subscription_count() > 0:
            g.pub.publish(convert.occupancy_grid_msg(cells, s.resolution,
                                                     (s.origin_x, s.origin_y), out))
            g.published += 1
        self.node.watchdog.published(f"{camera}/floor_grid")  # made (published if listened)
        self._merge(camera, cells, out)
        return cells

    def _grid(self, camera: str, labels: np.ndarray, header: Header, camera_info: Any,
              confidence: np.ndarray | None) -> np.ndarray | None:
        g, cfg = self.grids[camera], self.floor.config()
        if g.model is None or g.model[0] is not camera_info:
            try:
                g.model = (camera_info, CameraModel.from_camera_info(camera_info))
            except (ConfigError, ValueError, TypeError, OverflowError) as e:
                g.model, g.skipped = (camera_info, None), f"camera_info unusable: {e}"
        model = g.model[1]
        if model is None or labels.shape[:2] != (model.image_height, model.image_width):
            g.skipped = g.skipped if model is None else "camera_info size is not the image's"
            return None
        tf = self.floor.pose_source() == "tf"  # one rule: tf wins while in use
        pose = self.floor.tf_pose(header) if tf else g.pose
        lut = None if pose is None else g.luts.get(model, pose, cfg.spec,
                                                   inline_s=INLINE_BUILD_S)
        if lut is None:
            g.skipped = ("lookup table building" if pose is not None else
                         self.floor.stall_reason() or "no tf pose at the image stamp")
            return None
        if g.projector is None or g.projector.spec != cfg.spec:
            g.projector = GroundProjector(cfg.spec)
        g.projector.use_lut(lut)
        g.projector.obstacle_mode = cfg.obstacle_mode
        g.skipped = ""
        return g.projector.update(labels, cfg.traversable, confidence, cfg.min_confidence).copy()

    def _merge(self, camera: str, cells: np.ndarray, header: Header) -> None:
        """Keep this camera's latest grid; publish the merge of the recent ones."""
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        with self.lock:
            self.grids[camera].latest = (stamp, cells)
            recent = [g.latest[1] for g in self.grids.values() if g.latest is not None
                      and abs(stamp - g.latest[0]) <= MERGE_MAX_AGE_S]
        pub = self.floor.pub
        if not self.merging() or pub.get_subscription_count() == 0:
            return
        s = self.floor.config().spec
        pub.publish(convert.occupancy_grid_msg(merge_grids(recent), s.resolution,
                                               (s.origin_x, s.origin_y), header))
        self.node.watchdog.published("floor_grid")

    def subscribed_outputs(self) -> list[str]:
        """The floor outputs somebody listens to, as the watchdog names them."""
        out = [f"{c}/floor_grid" for c, g in self.grids.items()
               if g.pub.get_subscription_count() > 0]
        if self.merging() and self.floor.pub.get_subscription_count() > 0:
            out.append("floor_grid")
        return out

    def stall_reason(self, output: str) -> str:
        """Why ``output`` ("c/floor_grid" or the merged "floor_grid") made no grid lately."""
        camera = output.partition("/")[0] if "/" in output else ""
        if camera in self.grids:
            return self.grids[camera].skipped
        return "; ".join(f"{c}: {g.skipped}" for c, g in self.grids.items() if g.skipped)

    def close(self) -> None:
        for g in self.grids.values():
            g.luts.close()

    def diagnostics_values(self) -> dict[str, str]:
        out = {}
        for c, g in self.grids.items():
            out[f"{c}.floor_grids_published"] = str(g.published)
            out[f"{c}.floor_skipped"] = g.skipped
            out[f"{c}.floor_pose_source"] = ("tf" if self.floor.pose_source() == "tf" else
                                             "camera_pose" if g.pose is not None else "none")
        return out
