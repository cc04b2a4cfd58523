"""~/floor_map from a real node process over real topics: nav_msgs/Odometry and CamVid frames
in, the fused map out in odom, equal to `seg-ros floor-map` run offline on the node's own
labels and the same poses; a frame without a pose is counted, not fused.

The node: ``seg-ros node --params-file config/camvid.yaml`` (the shipped CamVid model) in a ROS
domain of its own, with the per-frame grid set to what the offline tool uses (every cell within
8 m of the camera, 0.1 m) and a fixed 40 m map without decay.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from cases.live_node import running  # noqa: E402
from floor_world import nav2_load, read_pgm  # noqa: E402

from seg_ros.cli import main as cli_main  # noqa: E402
from seg_ros.floor import UNKNOWN, Pose2D, local_grid_spec  # noqa: E402
from seg_ros.live import (  # noqa: E402
    LiveClient,
    NodeLauncher,
    camvid_frames,
    in_domain,
    param_args,
    stamp_of,
    wait_for,
)
from seg_ros.model_card import read_card  # noqa: E402
from seg_ros.ros.convert import byte_array  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "config" / "camvid.yaml"
PARAMS = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
DOMAIN = 1 + (os.getpid() + 61) % 100  # apart from test_node.py / test_floor_node.py
NODE = "/floor_map_test_node"
IMAGE, INFO, ODOM = "/map_cam/image_raw", "/map_cam/camera_info", "/map_test/odom"
RES, RANGE = 0.1, 8.0
LOCAL = local_grid_spec(RES, RANGE)  # camvid.yaml's camera is above the base origin
OVERRIDES = {
    "grid.resolution": RES, "grid.width": LOCAL.width_m, "grid.height": LOCAL.height_m,
    "grid.origin_x": LOCAL.origin_x, "grid.origin_y": LOCAL.origin_y, "grid.max_range": RANGE,
    "map.resolution": RES, "map.width": 40.0, "map.height": 40.0, "map.rolling": False,
    "map.half_life": 0.0, "map.rate_hz": 5.0, "map.max_pose_age": 0.05,
}
T0 = 1_700_000_000  # stamp of frame 0, s
POSES = [Pose2D(0.6 * k, 0.15 * k, 0.04 * k) for k in range(4)]  # the base in odom per frame


class Harness:
    """Publishers of image, camera_info and odometry; collectors of ~/labels and ~/floor_map."""

    def __init__(self) -> None:
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.client = LiveClient(DOMAIN, name="floor_map_test")
        node = self.client.node
        self.image_pub = self.client.publisher(Image, IMAGE, depth=5)
        self.info_pub = self.client.publisher(CameraInfo, INFO, depth=5)
        self.odom_pub = self.client.publisher(Odometry, ODOM, depth=50)
        self.labels = self.client.collect(NODE, ("labels",))
        self.maps: list[Any] = []
        self.lock = threading.Lock()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(OccupancyGrid, f"{NODE}/floor_map", self._on_map, latched)

    def _on_map(self, msg: Any) -> None:
        with self.lock:
            self.maps.append(msg)

    def map_at(self, stamp_ns: int, timeout: float = 10.0) -> Any:
        def find() -> Any:
            with self.lock:
                return next((m for m in self.maps if stamp_of(m) == stamp_ns), None)
        return wait_for(find, timeout, f"~/floor_map stamped {stamp_ns}")

    def close(self) -> None:
        self.client.close()

    def diagnostics(self) -> dict[str, str]:
        return self.client.diagnostics(NODE)[2]

    def odometry(self, t: float, pose: Pose2D) -> None:
        from nav_msgs.msg import Odometry

        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_footprint"
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(t * 1e9), 10**9)
        msg.pose.pose.position.x, msg.pose.pose.position.y = pose.x, pose.y
        msg.pose.pose.orientation.z = math.sin(pose.yaw / 2)
        msg.pose.pose.orientation.w = math.cos(pose.yaw / 2)
        self.odom_pub.publish(msg)

    def frame(self, rgb: np.ndarray, t_ns: int, once: bool) -> np.ndarray:
        """Publish camera_info + the image stamped ``t_ns``; the node's labels of it. ``once``:
        publish it one time only (a frame fused twice would count twice)."""
        from std_msgs.msg import Header

        header = Header(frame_id="map_cam_optical")
        header.stamp.sec, header.stamp.nanosec = divmod(t_ns, 10**9)

        def publish(h: Any) -> None:
            info = camera_info(rgb.shape[1], rgb.shape[0])
            info.header = h
            self.info_pub.publish(info)
            self.image_pub.publish(image_msg(rgb, h))

        if not once:
            msg = self.labels.request(publish, header, 20.0)["labels"]
        else:
            publish(header)
            wait_for(lambda: self.labels.arrival("labels", t_ns), 20.0, "the frame's labels")
            msg = self.labels.got["labels"][t_ns]
        return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width).copy()


def image_msg(rgb: np.ndarray, header: Any) -> Any:
    from sensor_msgs.msg import Image

    h, w = rgb.shape[:2]
    msg = Image(header=header, height=h, width=w, encoding="rgb8", step=w * 3)
    msg.data = byte_array(np.ascontiguousarray(rgb).data)
    return msg


def camera_info(width: int, height: int) -> Any:
    """A CamVid pinhole: fx = fy = 0.9 * width, centred, no distortion."""
    from sensor_msgs.msg import CameraInfo

    f = 0.9 * width
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.k = [f, 0.0, (width - 1) / 2, 0.0, f, (height - 1) / 2, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    return msg


def camera_yaml(path: Path, width: int, height: int) -> Path:
    info = camera_info(width, height)
    path.write_text(yaml.safe_dump({
        "image_width": width, "image_height": height, "distortion_model": "plumb_bob",
        "camera_matrix": {"rows": 3, "cols": 3, "data": [float(v) for v in info.k]},
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5}}))
    return path


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from in_domain(DOMAIN, Harness)


@pytest.fixture(scope="module")
def node(harness: Harness, tmp_path_factory) -> Iterator[Any]:
    launch = NodeLauncher(DOMAIN, PARAMS_FILE)
    proc = launch.start(["-r", f"__node:={NODE.strip('/')}", "-r", f"image:={IMAGE}",
                         "-r", f"camera_info:={INFO}", "-r", f"odom:={ODOM}",
                         *param_args(OVERRIDES)],
                        tmp_path_factory.mktemp("floor_map_node") / "node.log")
    with running(harness.client, NODE, proc, [harness.image_pub, harness.odom_pub],
                 ("floor_map",)):
        yield proc


def test_floor_map_matches_offline_fusion(harness: Harness, node: Any, tmp_path: Path) -> None:
    frames = camvid_frames(len(POSES), (480, 360))
    # Frames without a pose (odometry has not started), until the node has seen our map
    # subscription and counts them.
    stray: list[int] = []

    def counted() -> dict[str, str] | None:
        stray.append((T0 - 100 + len(stray)) * 10**9)
        harness.frame(frames[0], stray[-1], once=False)
        d = harness.diagnostics()
        return d if d["floor_map_pose_missing"] != "0" else None

    d = wait_for(counted, 30, "a frame without a pose to be counted")
    assert d["floor_map_frames_fused"] == "0" and d["floor_map_pose_source"] == "odometry", d
    missing = d["floor_map_pose_missing"]
    wait_for(lambda: "frame not fused into" in node.log() and "no odometry" in node.log(), 5,
             "the log line naming the missing odometry")

    def status(level: int, text: str) -> str | None:
        stray.append((T0 - 100 + len(stray)) * 10**9)
        harness.frame(frames[0], stray[-1], once=False)
        got, message, _ = harness.client.diagnostics(NODE)
        return message if got == level and text in message else None

    # While frames arrive and none can be fused, /diagnostics names the cause: WARN, then
    # ERROR once it lasts over 2 x diagnostics.stall_s.
    message = wait_for(lambda: status(1, "no odometry has arrived"), 30, "a WARN naming it")
    assert message.startswith("floor map: "), message
    message = wait_for(lambda: status(2, "floor map: no frame fused for"), 30, "an ERROR")
    assert "no odometry has arrived on /map_test/odom" in message, message
    missing = harness.diagnostics()["floor_map_pose_missing"]
    # Odometry 20 ms either side of each frame (the node interpolates), then the frames.
    for k, p in enumerate(POSES):
        for dt in (-0.02, 0.02):  # the drive's velocity: 0.6, 0.15 m/s, 0.04 rad/s
            harness.odometry(T0 + k + dt, Pose2D(p.x + dt * 0.6, p.y + dt * 0.15,
                                                 p.yaw + dt * 0.04))
    wait_for(lambda: harness.diagnostics()["floor_map_odom_received"] == str(2 * len(POSES)),
             10, "the odometry at the node")
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    known = []
    for k, rgb in enumerate(frames):
        t_ns = (T0 + k) * 10**9
        cv2.imwrite(str(labels_dir / f"{k:03d}.png"), harness.frame(rgb, t_ns, once=True))
        msg = harness.map_at(t_ns)
        known.append(int((np.asarray(msg.data) != UNKNOWN).sum()))
    assert known == sorted(known) and known[-1] > known[0], known
    d = harness.diagnostics()
    assert d["floor_map_frames_fused"] == str(len(POSES)), d
    assert d["floor_map_pose_missing"] == missing, d  # every frame with a pose was fused
    with harness.lock:
        assert not [m for m in harness.maps if stamp_of(m) in stray]

    live = harness.map_at((T0 + len(POSES) - 1) * 10**9)
    assert live.header.frame_id == "odom" and live.info.resolution == pytest.approx(RES)
    q = live.info.origin.orientation
    assert (q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 1.0)
    cells = np.asarray(live.data, np.int8).reshape(live.info.height, live.info.width)
    assert (live.info.width, live.info.height) == (400, 400)

    (tmp_path / "poses.csv").write_text("image,x,y,z,roll,pitch,yaw\n" + "".join(
        f"{k:03d}.png,{p.x!r},{p.y!r},0,0,0,{p.yaw!r}\n" for k, p in enumerate(POSES)))
    ids = ",".join(str(i) for i in read_card(REPO / "models" / "camvid.onnx").traversable)
    origin = (live.info.origin.position.x, live.info.origin.position.y)
    out = tmp_path / "offline" / "map.yaml"
    assert cli_main([
        "floor-map", "--labels", str(labels_dir), "--poses", str(tmp_path / "poses.csv"),
        "--camera-info", str(camera_yaml(tmp_path / "cam.yaml", 480, 360)),
        "--camera-pose", *map(str, PARAMS["camera_pose"]), "--traversable", ids,
        "--resolution", str(RES), "--max-range", str(RANGE), "--origin", *map(repr, origin),
        "--size", "40", "40", "--out", str(out)]) == 0
    offline = nav2_load(yaml.safe_load(out.read_text()), read_pgm(out.with_suffix(".pgm")))
    assert (offline != UNKNOWN).sum() > 2000
    same = (offline == cells).mean()
    assert same >= 0.999, f"only {same:.4%} of cells agree with seg-ros floor-map"


def test_map_parameters_are_live_and_checked(harness: Harness, node: Any) -> None:
    """A map too large for the cell limit, a threshold out of range and odometry in another
    frame are refused with the reason; a valid change starts a new map and is applied. An
    unstamped frame is counted, not fused."""
    before = harness.diagnostics()
    harness.frame(camvid_frames(1, (480, 360))[0], 0, once=False)
    after = wait_for(lambda: (d := harness.diagnostics())["floor_map_pose_missing"]
                     != before["floor_map_pose_missing"] and d, 10, "the unstamped frame")
    assert after["floor_map_frames_fused"] == before["floor_map_frames_fused"]
    wait_for(lambda: "the image has no stamp (0)" in node.log(), 5, "its log line")
    res = harness.client.set_params(NODE, **{"map.resolution": 0.001})[0]
    assert not res.successful and "exceeds 4,000,000" in res.reason, res.reason
    res = harness.client.set_params(NODE, **{"map.free_threshold": 0.6})[0]
    assert not res.successful and "0.49" in res.reason, res.reason
    assert harness.client.set_params(NODE, **{"map.frame": "world", "map.rate_hz": 10.0}
                                     )[0].successful
    res = harness.client.set_params(NODE, **{"grid.obstacle_mode": "smear"})[0]
    assert not res.successful and "is not one of contact, projected" in res.reason, res.reason
    assert harness.client.set_params(NODE, **{"grid.obstacle_mode": "projected"})[0].successful
    assert harness.diagnostics()["floor_obstacle_mode"] == "projected"
    harness.odometry(T0 + 50.0, Pose2D(0.0, 0.0, 0.0))  # stamped in "odom", not "world"
    d = wait_for(lambda: (v := harness.diagnostics())["floor_map_odom_wrong_frame"] != "0"
                 and v, 10, "the odometry in the wrong frame to be counted")
    assert int(d["floor_map_odom_received"]) > int(d["floor_map_odom_wrong_frame"]) > 0
    wait_for(lambda: "floor map: 400x400 cells of 0.1 m in world, half-life 0 s, 10 Hz"
             in node.log(), 5, "the new map's line in the log")
