"""The floor grid and ~/floor_map with the real tf2_ros, as on a robot: the cameras' mounts on
/tf_static and ``odom -> base_link`` on /tf from a tf publisher process of its own
(test/cases/tf_publisher.py, tf2_ros's broadcasters), a node with ``use_tf`` beside a node
fed the same poses as nav_msgs/Odometry and camera_pose parameters; both get the same CamVid
frames. The map the tf node fuses equals the odometry node's, cell for cell, with one camera and
with several; tf failures (unknown frame, extrapolation past map.max_pose_age, a stamp older
than the buffer, a negative stamp) are counted and named in /diagnostics while the other
outputs keep coming.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tf2_ros  # noqa: F401 - built into the venv by `make ros-tools`: never skipped
import yaml
from cases import process_command
from test_floor_map_node import camera_info, image_msg
from test_floor_node import matrix_quaternion

from seg_ros.floor import UNKNOWN, CameraPose, Pose2D
from seg_ros.live import LiveClient, NodeLauncher, camvid_frames, param_args, stamp_of, wait_for
from seg_ros.live.domains import pick_domain
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "config" / "camvid.yaml"
CAMVID_POSE = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]["camera_pose"]
T0 = 1_700_000_000  # s, stamp of the first frame
POSES = [Pose2D(0.6 * k, 0.15 * k, 0.04 * k) for k in range(4)]  # base_link in odom per frame
COMMON = {
    "grid_frame": "base_link", "map.frame": "odom", "grid.resolution": 0.1,
    "map.resolution": 0.1, "map.width": 40.0, "map.height": 40.0, "map.rolling": False,
    "map.half_life": 0.0, "map.rate_hz": 5.0, "map.max_pose_age": 0.1, "tf_timeout": 1.0,
    "threads": 1,  # one engine thread: both nodes label a frame bit for bit alike
}
REAR = [-0.2, 0.0, 1.0, 0.0, 0.3, math.pi]  # the several-camera run's second camera
FRONT = [0.2, 0.0, 1.0, 0.0, 0.3, 0.0]


class TfPublisher:
    """test/cases/tf_publisher.py in a process of its own, in ``domain``."""

    def __init__(self, domain: int, log_path: Path) -> None:
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            process_command("tf_publisher"), env=local_env(domain),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self._reply() == "ready", log_path.read_text()

    def _reply(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        assert reply == "ok", reply

    def mount(self, camera_frame: str, pose: Sequence[float]) -> None:
        """base_link -> the camera's optical frame, the pose camera_pose would give."""
        m = CameraPose.from_xyz_rpy(*pose).matrix
        self.send(static=[["base_link", camera_frame, *map(float, m[:3, 3]),
                           *matrix_quaternion(m[:3, :3])]])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=15) == 0
        self.log.close()


class Pair:
    """A tf node and an odometry node on the same cameras; maps and labels collected."""

    def __init__(self, domain: int, cameras: Sequence[str], log_dir: Path) -> None:
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.cameras = list(cameras)
        self.client = LiveClient(domain, name="tf_test")
        node = self.client.node
        prefix = [f"{c}/" for c in cameras] if cameras else [""]
        self.image = {p: self.client.publisher(Image, f"/{p}image", depth=5) for p in prefix}
        self.info = {p: self.client.publisher(CameraInfo, f"/{p}camera_info", depth=5)
                     for p in prefix}
        self.odom = self.client.publisher(Odometry, "/odom", depth=50)
        self.names = {"tf": "/tf_map_node", "odom": "/odom_map_node"}
        self.maps: dict[str, list[Any]] = {"tf": [], "odom": []}
        self.lock = threading.Lock()
        latched = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for key, name in self.names.items():
            node.create_subscription(OccupancyGrid, f"{name}/floor_map",
                                     functools.partial(self._on_map, key), latched)
        self.labels = self.client.collect(self.names["tf"], [f"{p}labels" for p in prefix])
        grids = {f"{p}floor_grid": OccupancyGrid for p in prefix}
        self.grids = self.client.collect(self.names["tf"], list(grids), types=grids)
        self.odom_grids = self.client.collect(self.names["odom"], list(grids), types=grids)
        self.tf = TfPublisher(domain, log_dir / "tf_publisher.log")
        cams = ["-p", f"cameras:={json.dumps(self.cameras)}"] if cameras else []
        poses: dict[str, list[float] | float] = {
            f"{c}.camera_pose": p for c, p in zip(cameras, (FRONT, REAR))} if cameras \
            else {"camera_pose": CAMVID_POSE}
        if cameras:  # a grid around the robot: the rear camera sees it too
            poses["grid.origin_x"] = -10.0
        launch = NodeLauncher(domain, PARAMS_FILE)
        self.procs = {
            "tf": launch.start(["-r", "__node:=tf_map_node", *cams,
                                *param_args({**COMMON, "use_tf": True,
                                             "grid.origin_x": poses.get("grid.origin_x", 0.0)})],
                               log_dir / "tf.log"),
            "odom": launch.start(["-r", "__node:=odom_map_node", *cams,
                                  *param_args({**COMMON, **poses, "use_tf": False})],
                                 log_dir / "odom.log")}

    def _on_map(self, key: str, msg: Any) -> None:
        with self.lock:
            self.maps[key].append(msg)

    def ready(self) -> None:
        def up() -> bool:
            for key, proc in self.procs.items():
                assert proc.alive(), f"{key} node exited:\n{proc.tail()}"
            return (all(p.get_subscription_count() >= 2 for p in self.image.values())
                    and self.odom.get_subscription_count() >= 1
                    and self.client.node.count_publishers(f"{self.names['tf']}/floor_map") > 0
                    and self.client.node.count_publishers(f"{self.names['odom']}/floor_map") > 0)
        wait_for(up, 90, "both nodes to start")
        self.tf.send(wait_subscribers=1, timeout=30)  # the tf node's listener

    def diagnostics(self, key: str = "tf") -> tuple[int, str, dict[str, str]]:
        return self.client.diagnostics(self.names[key])

    def pose(self, t: float, p: Pose2D) -> None:
        """The robot at ``t``: on /tf for the tf node, as Odometry for the other."""
        from nav_msgs.msg import Odometry

        self.tf.send(tf=[["odom", "base_link", t, p.x, p.y, p.yaw]])
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(t * 1e9), 10**9)
        msg.pose.pose.position.x, msg.pose.pose.position.y = p.x, p.y
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = (math.sin(p.yaw / 2),
                                                                    math.cos(p.yaw / 2))
        self.odom.publish(msg)

    def publisher(self, rgb: np.ndarray, camera: str) -> Any:
        """publish(header): ``rgb`` and its camera_info on ``camera``'s topics."""
        p = f"{camera}/" if camera else ""

        def publish(h: Any) -> None:
            info = camera_info(rgb.shape[1], rgb.shape[0])
            info.header = h
            self.info[p].publish(info)
            self.image[p].publish(image_msg(rgb, h))
        return publish

    def frame(self, rgb: np.ndarray, t_ns: int, camera: str = "",
              frame_id: str | None = None) -> Any:
        """Publish one image (+ camera_info) of ``camera`` once (a frame fused twice would
        count twice) and wait for the tf node's labels of it; those labels."""
        from std_msgs.msg import Header

        header = Header(frame_id=frame_id or f"{camera or 'map_cam'}_optical")
        header.stamp.sec, header.stamp.nanosec = divmod(t_ns, 10**9)
        p = f"{camera}/" if camera else ""
        self.publisher(rgb, camera)(header)
        wait_for(lambda: self.labels.arrival(f"{p}labels", t_ns), 30, f"{p}labels of {t_ns}")
        return self.labels.got[f"{p}labels"][t_ns]

    def warm(self, rgb: np.ndarray, t_s: int) -> None:
        """Frames stamped ``t_s`` (no robot pose there: never fused) until both nodes made
        every camera's grid: the lookup tables are built beside the worker, the first frames
        of a camera get no grid while they are."""
        from std_msgs.msg import Header

        for camera in self.cameras or [""]:
            p = f"{camera}/" if camera else ""
            header = Header(frame_id=f"{camera or 'map_cam'}_optical")
            header.stamp.sec = t_s
            for grids in (self.grids, self.odom_grids):
                grids.request(self.publisher(rgb, camera), header, 90.0,
                              outputs=[f"{p}floor_grid"])

    def map_at(self, key: str, stamp_ns: int, timeout: float = 20.0) -> np.ndarray:
        def find() -> Any:
            with self.lock:
                return next((m for m in self.maps[key] if stamp_of(m) == stamp_ns), None)
        m = wait_for(find, timeout, f"{self.names[key]}/floor_map stamped {stamp_ns}")
        return np.asarray(m.data, np.int8).reshape(m.info.height, m.info.width)

    def close(self) -> None:
        try:
            for key, proc in self.procs.items():
                assert proc.stop() == 0, f"{key}: {proc.tail()}"
        finally:
            self.tf.close()
            self.client.close()


def start_pair(cameras: Sequence[str], log_dir: Path) -> Iterator[Pair]:
    import os

    domain = pick_domain()
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    pair = Pair(domain, cameras, log_dir)
    try:
        pair.ready()
        yield pair
    finally:
        pair.close()
        if old is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Iterator[Pair]:
    pair_iter = start_pair([], tmp_path_factory.mktemp("tf_single"))
    pair = next(pair_iter)
    pair.tf.mount("map_cam_optical", CAMVID_POSE)
    yield pair
    next(pair_iter, None)


def drive(pair: Pair, cameras: Sequence[str]) -> None:
    """Frame k of camera j at T0 + k + j / 2 s with the robot's pose there; after each, both
    maps stamped with it; at the end they are equal cell for cell."""
    frames = camvid_frames(len(POSES) * max(1, len(cameras)), (480, 360))
    pair.warm(frames[0], T0 - 50)
    known = []
    for k, p in enumerate(POSES):
        for j in range(max(1, len(cameras))):
            t = T0 + k + j / 2
            pair.pose(t, Pose2D(p.x + 0.3 * j, p.y, p.yaw + 0.02 * j))
        for j, camera in enumerate(cameras or [""]):
            t_ns = (T0 + k) * 10**9 + j * 500_000_000
            pair.frame(frames[k * max(1, len(cameras)) + j], t_ns, camera)
            tf_map, odom_map = pair.map_at("tf", t_ns), pair.map_at("odom", t_ns)
            known.append(int((tf_map != UNKNOWN).sum()))
    assert known[-1] > max(known[0], 300), known
    np.testing.assert_array_equal(tf_map, odom_map)
    n = len(POSES) * max(1, len(cameras))
    for key in ("tf", "odom"):
        d = pair.diagnostics(key)[2]
        assert d["floor_map_frames_fused"] == str(n), (key, d)
        assert d["floor_map_pose_source"] == ("tf" if key == "tf" else "odometry"), d


def test_single_camera_map_from_tf_equals_odometry(single: Pair) -> None:
    drive(single, [])
    d = single.diagnostics()[2]
    assert d["floor_pose_source"] == "tf" and d["floor_tf_failures"] == "0", d


def test_several_cameras_map_from_tf_equals_odometry(tmp_path: Path) -> None:
    """Several cameras: each camera's mount from /tf_static and the robot's pose from /tf
    (camera_floor passed no tf pose before: nothing was fused)."""
    pair_iter = start_pair(["front", "rear"], tmp_path)
    pair = next(pair_iter)
    try:
        pair.tf.mount("front_optical", FRONT)
        pair.tf.mount("rear_optical", REAR)
        drive(pair, ["front", "rear"])
        d = pair.diagnostics()[2]
        assert d["front.floor_pose_source"] == "tf" == d["rear.floor_pose_source"], d
        assert pair.diagnostics("odom")[2]["front.floor_pose_source"] == "camera_pose"
    finally:
        next(pair_iter, None)


def wait_diag(pair: Pair, text: str, key: str, changed_from: str) -> tuple[str, dict[str, str]]:
    """The tf node's /diagnostics once counter ``key`` moved and the message names ``text``."""
    def seen() -> tuple[str, dict[str, str]] | None:
        _lvl, msg, values = pair.diagnostics()
        return (msg, values) if values[key] != changed_from and text in msg else None
    return wait_for(seen, 30, f"/diagnostics naming {text!r} with {key} counted")


def test_tf_failures_are_counted_and_named(single: Pair) -> None:
    """Unknown frame, an image past the newest tf by more than map.max_pose_age, a stamp older
    than tf's buffer and a negative stamp: each costs only its own output (labels keep coming),
    is counted and named in /diagnostics; an image within map.max_pose_age of the newest tf is
    fused (tf follows map.max_pose_age as odometry does)."""
    rgb = camvid_frames(1, (480, 360))[0]
    newest = T0 + 100.0
    single.pose(newest - 1.0, POSES[0])
    single.pose(newest, POSES[1])
    # within map.max_pose_age (0.1 s) past the newest transform: fused with the newest pose
    d0 = single.diagnostics()[2]
    single.frame(rgb, round((newest + 0.05) * 1e9))
    wait_for(lambda: single.diagnostics()[2]["floor_map_frames_fused"]
             == str(int(d0["floor_map_frames_fused"]) + 1), 20, "the frame fused")

    # unknown camera frame: no grid for it, counted and named
    failures = single.diagnostics()[2]["floor_tf_failures"]
    single.frame(rgb, round((newest + 0.06) * 1e9), frame_id="ghost_optical")
    wait_diag(single, "ghost_optical", "floor_tf_failures", failures)

    # past the newest transform by 2 s (> map.max_pose_age): grid made, map not fused
    missing = single.diagnostics()[2]["floor_map_pose_missing"]
    t_ns = round((newest + 2.0) * 1e9)
    single.frame(rgb, t_ns)
    wait_for(lambda: single.grids.arrival("floor_grid", t_ns), 20, "the grid of that frame")
    msg, _ = wait_diag(single, "map.max_pose_age", "floor_map_pose_missing", missing)
    assert "extrapolation into the future" in msg, msg

    # older than tf's buffer (10 s): not fused, named
    missing = single.diagnostics()[2]["floor_map_pose_missing"]
    single.frame(rgb, round((newest - 60.0) * 1e9))
    msg, _ = wait_diag(single, "extrapolation into the past", "floor_map_pose_missing", missing)

    # a negative stamp: labels still out, the grid skipped and counted, the node alive
    failures = single.diagnostics()[2]["floor_tf_failures"]
    from std_msgs.msg import Header

    h = Header(frame_id="map_cam_optical")
    h.stamp.sec, h.stamp.nanosec = -5, 0

    single.labels.request(single.publisher(rgb, ""), h, 30.0)
    wait_diag(single, "cannot be looked up in tf", "floor_tf_failures", failures)
    assert single.procs["tf"].alive()
    # and the next good frame is fused again
    fused = single.diagnostics()[2]["floor_map_frames_fused"]
    single.pose(newest + 3.0, POSES[2])
    single.frame(rgb, round((newest + 3.0) * 1e9))
    wait_for(lambda: single.diagnostics()[2]["floor_map_frames_fused"] != fused, 20,
             "the next good frame fused")
