"""~/floor_grid: the traversable-floor occupancy grid of each frame (nav_msgs/OccupancyGrid in
grid_frame, the image stamp); with several cameras ~/c/floor_grid per camera and, with
grid.merge, their merge on ~/floor_grid.

Needs the camera_info, a camera pose (tf or camera_pose, seg_ros.ros.poses), the labels at the
camera's size, confidence when grid.min_confidence > 0, and depth where it is there
(grid.source). The grid engines are seg_ros.ros.floor_hook (one camera) and
seg_ros.ros.camera_floor (several); the grid is left in the frame's products for the fused map.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np

from seg_ros.floor import GridSpec
from seg_ros.ros import camera_floor, floor_config
from seg_ros.ros.camera_floor import CameraFloorGrids
from seg_ros.ros.floor_hook import FloorGrid
from seg_ros.ros.outputs.base import FrameResult, Health, OutputBase
from seg_ros.ros.param_groups import ParamGroup

WARN = 1


class FloorCells(NamedTuple):
    """A frame's grid for the outputs made from it."""

    cells: np.ndarray
    spec: GridSpec


class FloorGridOutput(OutputBase):
    name = "floor_grid"

    @classmethod
    def param_groups(cls, cameras: tuple[str, ...]) -> list[ParamGroup]:
        groups = [floor_config.group()]
        return [*groups, camera_floor.group(cameras)] if cameras else groups

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.grid: FloorGrid | None = None
        self.cams: CameraFloorGrids | None = None
        self.group = host.params["floor_grid"]
        # until the model is loaded the class names are unknown: every other rule is checked
        self.group.check = lambda changed, values: self._check_unloaded(values)

    @staticmethod
    def _check_unloaded(values: Any) -> str:
        try:
            floor_config.config_from({**values, "grid.traversable": None}, (), (0,))
        except Exception as e:  # ConfigError: the reason, as the loaded check gives it
            return str(e)
        return ""

    def configure(self, card: Any) -> None:
        h = self.host
        if self.grid is not None:
            self.grid.set_card(card)
            return
        self.grid = FloorGrid(h, self.group, h.poses, h.depth, card)
        if h.cameraset is not None:  # ~/c/floor_grid, c.camera_pose, grid.merge
            self.cams = CameraFloorGrids(h, tuple(h.cameraset.cameras), self.grid,
                                         h.params["cameras"])

    def wanted(self, cam: Any, live: Any) -> bool:
        if self.cams is not None:
            return self.cams.listened(cam.name)
        return self.grid is not None and self.grid.pub.get_subscription_count() > 0

    def ready(self, cam: Any, live: Any) -> bool:
        if self.grid is None:
            return False
        if self.cams is not None:
            return self.cams.ready(cam.name, cam.camera_info)
        return self.grid.ready(cam.camera_info, self.host.info_topic())

    def needs_confidence(self, cam: Any, live: Any) -> bool:
        return self.grid is not None and self.grid.needs_confidence()

    def publish(self, frame: FrameResult) -> None:
        """The grid needs the labels at the camera's size (its camera_info's)."""
        assert self.grid is not None
        labels, conf = frame.at_input_size()
        cam, header = frame.camera, frame.header
        with frame.timer("publish"), cam.order.turn("floor_grid", frame.seq):
            if self.cams is not None:
                cells = self.cams(cam.name, labels, header, cam.camera_info, conf)
            else:
                cells = self.grid(labels, header, cam.camera_info, conf)
                if cells is not None:  # the grid was made (the map: see its health)
                    self.host.watchdog.published("floor_grid")
        if cells is not None:
            frame.products[self.name] = FloorCells(cells, self.grid.config().spec)

    def expected(self, live: Any) -> list[str]:
        if self.cams is not None:  # several cameras: theirs and the merged grid
            return self.cams.subscribed_outputs()
        return ["floor_grid"] if self.wanted(None, live) else []

    def stall_reason(self, output: str) -> str:
        why = self.grid.stall_reason() if output == "floor_grid" and self.grid else ""
        if not why and output.endswith("floor_grid") and self.cams is not None:
            why = self.cams.stall_reason(output)
        return why

    def health(self) -> Health:
        if self.grid is None:
            return []
        found = [h] if (h := self.grid.health())[0] else []
        return found + self._camera_health()

    def _camera_health(self) -> Health:
        """While the merged ~/floor_grid is listened to: WARN for each camera whose images
        arrive but that made no grid for diagnostics.stall_s (the merge goes on without it)."""
        h, cams = self.host, self.cams
        now, since, stall_s = time.monotonic(), h.input_since(), h.live.stall_s
        if cams is None or since is None or now - h.stats.last_receive > h.stale_input_s or \
                "floor_grid" not in cams.subscribed_outputs():
            return []  # no input at all is said by the input's health
        out = []
        for name in cams.grids:
            if h.cameraset.no_input(f"{name}/image", now, since, h.stale_input_s):
                continue  # that camera's silence is said by the input's health
            made = max(h.watchdog.last(f"{name}/floor_grid"), since,
                       h.watchdog.expected_since("floor_grid"))
            if now - made > stall_s:
                reason = cams.stall_reason(f"{name}/floor_grid") or "no grid made"
                out.append((WARN, f"camera {name}: no floor grid for {now - made:.1f} s, the "
                                  f"merged ~/floor_grid goes on without it: {reason}"))
        return out

    def diagnostics_values(self) -> dict[str, str]:
        if self.grid is None:
            return {}
        cams = self.cams.diagnostics_values() if self.cams is not None else {}
        return {**self.grid.diagnostics_values(), **cams}

    def close(self) -> None:
        if self.grid is not None:
            self.grid.close()
        if self.cams is not None:
            self.cams.close()
