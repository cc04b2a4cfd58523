"""Faults on a live node process: the node logs, reports WARN/ERROR in /diagnostics, keeps
running and goes back to OK once the cause is gone.

The engine is the fault-injecting test backend (``backend:=fault_backend:FaultyEngine``, see
test/fault_backend.py) loaded by the node process like any plugin; it raises while a file
exists. Good 64x48 frames stream at 10 Hz during every test (so "no images" never masks a level).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")

from seg_ros.live import LiveClient, NodeProcess, pick_domain, wait_for
from seg_ros.ros.convert import to_image_msg

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "/faulty_node"
OK, WARN, ERROR = 0, 1, 2
W, H = 64, 48


class Rig:
    def __init__(self, model: Path, fault_file: Path) -> None:
        domain = pick_domain()
        test_dir = str(Path(__file__).resolve().parents[1])  # fault_backend.py
        self.fault_file = fault_file
        self.node = NodeProcess(
            ["-p", f"model_path:={model}", "-p", "threads:=1",
             "-p", "backend:=fault_backend:FaultyEngine", "-p", "use_tf:=false",
             "-p", "camera_pose:=[0.0, 0.0, 1.0, 0.0, 0.4, 0.0]",
             "-r", "image:=/ft/image", "-r", "camera_info:=/ft/camera_info"],
            domain, name="faulty_node",
            env={"PYTHONPATH": test_dir, "SEG_ROS_FAULT_FILE": str(fault_file)})
        self.client = LiveClient(domain)
        from nav_msgs.msg import OccupancyGrid
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.img_pub = self.client.publisher(Image, "/ft/image", depth=1)
        self.info_pub = self.client.publisher(CameraInfo, "/ft/camera_info", depth=1)
        self.grids: list[Any] = []
        self.client.node.create_subscription(
            OccupancyGrid, f"{NODE}/floor_grid", self.grids.append,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.labels = self.client.count_outputs(NODE, ("labels",))
        self.info_size = (W, H)
        self._stop = threading.Event()
        self._rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
        wait_for(lambda: self.alive() and self.img_pub.get_subscription_count() > 0
                 and self.client.node.count_publishers(f"{NODE}/labels") > 0, 60,
                 f"the node to start:\n{self.node.log()[-2000:]}")
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()

    def _stream(self) -> None:
        from sensor_msgs.msg import CameraInfo
        from std_msgs.msg import Header

        k = 0
        while not self._stop.is_set():
            k += 1
            h = Header(frame_id="ft_camera")
            h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns(), 10**9)
            w, hh = self.info_size
            info = CameraInfo(header=h, width=w, height=hh, distortion_model="plumb_bob")
            info.k = np.array([60.0, 0, w / 2, 0, 60.0, hh / 2, 0, 0, 1])
            info.d = np.zeros(5)
            try:
                self.info_pub.publish(info)
                self.img_pub.publish(to_image_msg(self._rgb, "rgb8", h))
            except Exception:  # context shut down at teardown
                return
            self._stop.wait(0.1)

    def alive(self) -> bool:
        return self.node.alive()

    def level(self, want: int, timeout: float = 12.0) -> tuple[int, str, dict[str, str]]:
        """Wait for a /diagnostics status at level ``want``; returns (level, message, values)."""
        got: list[Any] = []

        def check() -> tuple[int, str, dict[str, str]] | None:
            lvl, msg, values = self.client.diagnostics(NODE, timeout=5.0)
            got.append((lvl, msg))
            return (lvl, msg, values) if lvl == want else None

        try:
            return wait_for(check, timeout, f"diagnostics level {want}")
        except TimeoutError:
            raise AssertionError(f"level never {want}; saw {got[-5:]}\n"
                                 f"{self.node.log()[-2000:]}") from None

    def outputs_flow(self) -> None:
        n = len(self.labels.stamps("labels"))
        wait_for(lambda: len(self.labels.stamps("labels")) >= n + 3, 10, "labels to flow")

    def close(self) -> int | None:
        """Stop the traffic and the node; the node's exit code (NodeProcess.stop)."""
        self._stop.set()
        self._thread.join(2)
        self.client.close()
        return self.node.stop()


@pytest.fixture(scope="module")
def rig(tiny_model: Path, tmp_path_factory) -> Iterator[Rig]:
    r = Rig(tiny_model, tmp_path_factory.mktemp("faults") / "engine_fails")
    try:
        r.level(OK, timeout=20)
        yield r
    finally:
        rc = r.close()
    assert rc == 0, "the node did not shut down cleanly after the faults"


def test_engine_fault_mid_stream_recovers(rig: Rig) -> None:
    rig.outputs_flow()
    rig.fault_file.touch()
    try:
        _lvl, msg, values = rig.level(ERROR)
        assert "injected engine fault" in msg and "injected" in values["last_error"]
        assert int(values["frames_failed"]) > 0
        assert rig.alive()
    finally:
        rig.fault_file.unlink()
    rig.level(OK)
    rig.outputs_flow()
    assert "frame failed" in rig.node.log()  # logged (rate-limited)


def test_camera_info_size_change_mid_stream(rig: Rig) -> None:
    wait_for(lambda: rig.grids, 10, "a floor grid")
    rig.info_size = (2 * W, 2 * H)  # camera_info of another image size
    try:
        _lvl, msg, values = rig.level(WARN)
        assert "floor_size_mismatches" in msg and int(values["floor_size_mismatches"]) > 0
        rig.outputs_flow()  # the image outputs keep coming; only the grid is skipped
    finally:
        rig.info_size = (W, H)
    rig.level(OK)
    n = len(rig.grids)
    wait_for(lambda: len(rig.grids) > n, 10, "floor grids again")


def test_invalid_parameter_is_refused_reported_and_cleared(rig: Rig) -> None:
    res = rig.client.set_params(NODE, overlay_alpha=7.0)[0]
    assert not res.successful
    _lvl, msg, values = rig.level(WARN)
    assert "overlay_alpha" in msg and int(values["parameter_refusals"]) >= 1
    assert "refused parameter overlay_alpha" in rig.node.log()
    rig.level(OK)
    assert rig.client.set_params(NODE, overlay_alpha=0.3)[0].successful
    rig.outputs_flow()
