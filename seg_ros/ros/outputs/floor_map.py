"""~/floor_map: the floor grids fused over time in map.frame (seg_ros.ros.floor_map: odometry,
log-odds, decay, rolling window; published at map.rate_hz, transient-local).

Made from the floor grid output's grid of each frame (it ``requires`` it, so the grid is made
while only the map is listened to), at the robot's pose at the image stamp: tf's while the floor
uses tf (seg_ros.ros.poses), else odometry's. A frame without a pose is not fused (counted, and
logged once per kind of reason every 10 s).
"""

from __future__ import annotations

import time
from typing import Any

from seg_ros.ros import floor_map
from seg_ros.ros.floor_map import FloorMapOutput
from seg_ros.ros.outputs.base import FrameResult, Health, OutputBase
from seg_ros.ros.param_groups import ParamGroup

LOG_THROTTLE_S = 10.0


class FloorMap(OutputBase):
    name = "floor_map"
    requires = ("floor_grid",)

    @classmethod
    def param_groups(cls, cameras: tuple[str, ...]) -> list[ParamGroup]:
        return [floor_map.group()]

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.map: FloorMapOutput | None = None
        self._seen_missing = 0  # frames without a pose at the last health() call
        self._logged: dict[str, float] = {}

    def configure(self, card: Any) -> None:
        if self.map is not None:
            return
        self.map = m = FloorMapOutput(self.host, self.host.params["floor_map"])
        log = self.host.get_logger()
        log.info(f"floor map on {m.pub.topic_name}: {m.describe()}")
        self.host.params["floor_map"].appliers.append(
            lambda changed: log.info(f"floor map: {m.describe()}"))

    def wanted(self, cam: Any, live: Any) -> bool:
        return self.map is not None and self.map.subscribed()

    def publish(self, frame: FrameResult) -> None:
        grid = frame.products.get("floor_grid")
        if grid is None or self.map is None:
            return
        poses, m = self.host.poses, self.map
        tf_pose = (lambda f, h: poses.robot_pose(f, h, m.cfg.max_pose_age)) \
            if poses.tf_active() else None
        why = m.fuse(grid.cells, grid.spec, frame.header, tf_pose)
        if why:
            self._log(frame.camera.name, why)

    def _log(self, camera: str, why: str) -> None:
        kind, now = " ".join(why.split()[:3]), time.monotonic()
        if now - self._logged.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._logged[kind] = now
            assert self.map is not None
            self.host.get_logger().warning(
                f"{camera + ': ' if camera else ''}frame not fused into "
                f"{self.map.pub.topic_name}: {why}")

    def expected(self, live: Any) -> list[str]:
        """The single camera's grid, which the map is made from, is held to account."""
        single = self.host.cameraset is None
        return ["floor_grid"] if single and self.wanted(None, live) else []

    def health(self) -> Health:
        if self.map is None:
            return []
        missing = self.map.counters.pose_missing
        found = self.map.health(missing - self._seen_missing, self.host.live.stall_s)
        self._seen_missing = missing
        return [found] if found[0] else []

    def diagnostics_values(self) -> dict[str, str]:
        if self.map is None:
            return {}
        return {"floor_map_pose_source": "tf" if self.host.poses.tf_active() else "odometry",
                **self.map.diagnostics_values()}
