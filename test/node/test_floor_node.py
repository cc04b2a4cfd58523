"""~/floor_grid from a real node process over real topics (rclpy, Fast DDS loopback).

One node process for the module: ``seg-ros node --params-file config/camvid.yaml`` with the
shipped CamVid model, renamed and remapped so it cannot meet test_node.py's nodes, in a ROS
domain of its own. The camera is a plausible pinhole for CamVid's 480x360 frames: fx = fy =
0.9 * width = 432 px, principal point at the image centre, no distortion; the pose and grid are
camvid.yaml's (camera 1.2 m up, pitched 0.03 rad down; 20 x 16 m at 0.1 m, x 0..20, y -8..8).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from cases.live_node import running  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from seg_ros.floor import FREE, UNKNOWN, CameraModel, CameraPose, GridSpec, GroundProjector  # noqa: E402
from seg_ros.live import (  # noqa: E402
    LiveClient,
    NodeLauncher,
    NodeProcess,
    in_domain,
    pick_domain,
    stamp_of,
    wait_for,
)
from seg_ros.model_card import read_card  # noqa: E402
from seg_ros.ros.convert import to_image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "config" / "camvid.yaml"
PARAMS = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
DOMAIN = pick_domain()
NODE = "/floor_test_node"
IMAGE_TOPIC, INFO_TOPIC = "/floor_cam/image_raw", "/floor_cam/camera_info"
FX_PER_WIDTH = 0.9
LAUNCH = NodeLauncher(DOMAIN, PARAMS_FILE)


class Harness:
    """The test side: a :class:`seg_ros.live.LiveClient` (own context, spin thread,
    diagnostics, service calls) plus image + camera_info publishers and collectors by stamp."""

    def __init__(self) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        self.client = LiveClient(DOMAIN, name="floor_grid_test")
        self.node, self.lock = self.client.node, self.client.lock
        self.image_pub = self.client.publisher(Image, IMAGE_TOPIC, depth=5)
        self.info_pub = self.client.publisher(CameraInfo, INFO_TOPIC, depth=5)
        self.collector = self.client.collect(NODE, ())
        self._stamp = 5_000

    def close(self) -> None:
        self.client.close()

    def diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        """Diagnostics values of the node from a message sent after this call."""
        return self.client.diagnostics(NODE, timeout=timeout)[2]

    def subscribe(self, output: str) -> Any:
        from nav_msgs.msg import OccupancyGrid

        return self.collector.add(output, OccupancyGrid if output == "floor_grid" else None)

    def next_header(self) -> Any:
        from std_msgs.msg import Header

        self._stamp += 1
        h = Header(frame_id="camvid_camera_optical")
        h.stamp.sec, h.stamp.nanosec = 1_700_000_100, self._stamp * 1000
        return h

    def request(self, rgb: np.ndarray, info: Any | None, outputs: tuple[str, ...],
                timeout: float = 20.0, expect: bool = True) -> dict[str, Any]:
        """Publish camera_info (if given) and the frame every 0.5 s until every output has its
        stamp (``expect=False``: publish for ``timeout`` s and return what came)."""

        def publish(header: Any) -> None:
            if info is not None:
                info.header = header
                self.info_pub.publish(info)
            self.image_pub.publish(to_image_msg(rgb, "rgb8", header))

        return self.collector.request(publish, self.next_header(), timeout, outputs, expect)

    def set_params(self, **values: Any) -> Any:
        """Set all ``values`` in one atomic request; the SetParametersResult."""
        from rcl_interfaces.srv import SetParametersAtomically as Srv

        return self.client.call(f"{NODE}/set_parameters_atomically", Srv, Srv.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        ).result


def camera_info(width: int, height: int) -> Any:
    """The plausible CamVid pinhole: fx = fy = 0.9 * width, centred, no distortion."""
    from sensor_msgs.msg import CameraInfo

    f, cx, cy = FX_PER_WIDTH * width, (width - 1) / 2, (height - 1) / 2
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def config_spec() -> GridSpec:
    return GridSpec(PARAMS["grid.resolution"], PARAMS["grid.width"], PARAMS["grid.height"],
                    PARAMS["grid.origin_x"], PARAMS["grid.origin_y"], PARAMS["grid.max_range"],
                    PARAMS["grid_frame"])


def grid_cells(msg: Any) -> np.ndarray:
    return np.asarray(msg.data, np.int8).reshape(msg.info.height, msg.info.width)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from in_domain(DOMAIN, Harness)


@pytest.fixture(scope="module")
def node(harness: Harness, tmp_path_factory) -> Iterator[NodeProcess]:
    """The node process (shipped model, camvid.yaml), up and subscribed."""
    proc = LAUNCH.start(["-r", f"__node:={NODE.strip('/')}", "-r", f"image:={IMAGE_TOPIC}",
                       "-r", f"camera_info:={INFO_TOPIC}"],
                      tmp_path_factory.mktemp("floor_node") / "node.log")
    with running(harness.client, NODE, proc, [harness.image_pub, harness.info_pub],
                 ("floor_grid",)):
        yield proc


# --------------------------------------------------------------------------------- tests


def test_no_camera_info_no_grid(harness: Harness, node: NodeProcess, camvid_frame) -> None:
    """Runs first: ~/floor_grid subscribed but no camera_info yet -> no grid, and a log line."""
    rgb, _ = camvid_frame
    subs = [harness.subscribe("labels"), harness.subscribe("floor_grid")]
    try:
        got = harness.request(rgb, None, ("labels", "floor_grid"), timeout=2.0, expect=False)
        assert "labels" in got and "floor_grid" not in got
        wait_for(lambda: "no camera_info has arrived" in node.log(), 5, "the log line")
        assert harness.diagnostics()["floor_grids_published"] == "0"
    finally:
        for s in subs:
            harness.node.destroy_subscription(s)
    wait_for(lambda: harness.node.count_subscribers(f"{NODE}/floor_grid") == 0, 5, "unsubscribe")


def test_no_subscriber_no_grid(harness: Harness, node: NodeProcess, camvid_frame) -> None:
    """(b) Nobody subscribes ~/floor_grid -> labels flow, no grid is computed (camera_info
    and camera_pose present)."""
    rgb, _ = camvid_frame
    sub = harness.subscribe("labels")
    try:
        for _ in range(2):
            harness.request(rgb, camera_info(rgb.shape[1], rgb.shape[0]), ("labels",))
        d = harness.diagnostics()
        assert d["floor_grids_published"] == "0" and d["floor_lut_builds"] == "0", d
        assert d["floor_pose_source"] == "camera_pose"
    finally:
        harness.node.destroy_subscription(sub)


def test_grid_matches_projection_of_the_node_labels(harness: Harness, node: NodeProcess,
                                                    camvid_frame) -> None:
    """(a) The grid: stamp, frame, geometry as configured; cell for cell the in-process
    GroundProjector of the node's own labels; free road cells ahead, agreeing with the CamVid
    ground truth projected the same way."""
    rgb, truth = camvid_frame
    h, w = rgb.shape[:2]
    subs = [harness.subscribe("labels"), harness.subscribe("floor_grid")]
    try:
        info = camera_info(w, h)
        out = harness.request(rgb, info, ("labels", "floor_grid"))
        grid, labels_msg = out["floor_grid"], out["labels"]
        assert stamp_of(grid) == stamp_of(labels_msg)  # = the image stamp
        assert grid.header.frame_id == PARAMS["grid_frame"] == "base_footprint"
        spec = config_spec()
        assert grid.info.resolution == pytest.approx(spec.resolution)
        assert (grid.info.width, grid.info.height) == (spec.cols, spec.rows) == (200, 160)
        assert (grid.info.origin.position.x, grid.info.origin.position.y) == (
            pytest.approx(spec.origin_x), pytest.approx(spec.origin_y))
        assert grid.info.origin.orientation.w == 1.0

        cells = grid_cells(grid)
        labels = np.frombuffer(labels_msg.data, np.uint8).reshape(h, w)
        card = read_card(REPO / "models" / "camvid.onnx")
        proj = GroundProjector(spec, CameraModel.from_camera_info(info),
                               CameraPose.from_xyz_rpy(*PARAMS["camera_pose"]))
        np.testing.assert_array_equal(cells, proj.update(labels, card.traversable))

        xs, ys = spec.cell_centres()
        gx, gy = np.meshgrid(xs, ys)
        free = cells == FREE
        assert free.sum() > 1000
        assert (gx[free] > 0).all()
        # Most free cells are ahead and near the centre line: the road in front of the car.
        ahead = (gx > 2.0) & (gx < 15.0) & (np.abs(gy) < 4.0)
        assert (free & ahead).sum() / free.sum() > 0.6
        # Where CamVid's ground truth says road/pavement near the camera, the node says free.
        truth_cells = proj.update(truth, card.traversable).copy()
        near = (gx > 3.0) & (gx < 10.0) & (np.abs(gy) < 2.0)
        road = near & (truth_cells == FREE) & (cells != UNKNOWN)
        assert road.sum() > 500
        assert (cells[road] == FREE).mean() > 0.9
        assert (cells[near] == FREE).mean() > 0.8

        # The lookup table was built once for several frames with equal camera_info messages.
        for _ in range(2):
            harness.request(rgb, camera_info(w, h), ("floor_grid",))
        d = harness.diagnostics()
        assert int(d["floor_grids_published"]) >= 3 and d["floor_lut_builds"] == "1", d
        assert d["floor_tf_failures"] == "0", d
    finally:
        for s in subs:
            harness.node.destroy_subscription(s)


def test_camera_info_size_mismatch_is_skipped(harness: Harness, node: NodeProcess,
                                              camvid_frame) -> None:
    rgb, _ = camvid_frame
    subs = [harness.subscribe("labels"), harness.subscribe("floor_grid")]
    try:
        before = int(harness.diagnostics()["floor_size_mismatches"])
        got = harness.request(rgb, camera_info(640, 480), ("labels", "floor_grid"), timeout=2.0,
                              expect=False)
        assert "labels" in got and "floor_grid" not in got  # labels keep flowing
        assert int(harness.diagnostics()["floor_size_mismatches"]) > before
        wait_for(lambda: "camera_info describes a 640x480 image" in node.log()
                 and "the image is 480x360" in node.log(), 5, "the size error in the log")
    finally:
        for s in subs:
            harness.node.destroy_subscription(s)


def test_live_grid_parameters(harness: Harness, node: NodeProcess, camvid_frame) -> None:
    """Valid sets rebuild the grid (new geometry, one LUT build); invalid ones are refused."""
    rgb, _ = camvid_frame
    h, w = rgb.shape[:2]
    sub = harness.subscribe("floor_grid")
    try:
        bad = {
            "grid.resolution": (0.0005, "out of range"),
            "camera_pose": ([0.0, 0.0, -0.3, 0.0, 0.05, 0.0], "under the ground"),
            "grid.traversable": (["Lava"], "not a class"),
        }
        for name, (value, why) in bad.items():
            res = harness.set_params(**{name: value})
            assert not res.successful and why in res.reason, (name, res.reason)
        res = harness.set_params(**{"grid.resolution": 0.001, "grid.width": 100.0})
        assert not res.successful and "coarsen the resolution" in res.reason, res.reason

        builds = int(harness.diagnostics()["floor_lut_builds"])
        res = harness.set_params(**{"grid.resolution": 0.2, "grid.width": 20.0})
        assert res.successful, res.reason
        grid = harness.request(rgb, camera_info(w, h), ("floor_grid",))["floor_grid"]
        assert (grid.info.width, grid.info.height) == (100, 80)
        assert grid.info.resolution == pytest.approx(0.2)
        assert int(harness.diagnostics()["floor_lut_builds"]) == builds + 1
        # min_confidence: the node computes confidence for the grid although nobody subscribes
        # ~/confidence; low-confidence cells become unknown. No LUT rebuild for that.
        assert harness.set_params(**{"grid.min_confidence": 250}).successful
        strict = harness.request(rgb, camera_info(w, h), ("floor_grid",))["floor_grid"]
        known, known_strict = (int((grid_cells(g) != UNKNOWN).sum()) for g in (grid, strict))
        assert 0 < known_strict < known
        d = harness.diagnostics()
        assert int(d["floor_lut_builds"]) == builds + 1 and d["computed_confidence"] == "0", d
    finally:
        harness.set_params(**{"grid.resolution": PARAMS["grid.resolution"],
                              "grid.min_confidence": 0})
        harness.node.destroy_subscription(sub)


def test_tf_pose(harness: Harness, node: NodeProcess, camvid_frame) -> None:
    """(c) use_tf with the real tf2_ros: the pose comes from a static transform published here,
    not from camvid.yaml's camera_pose (tf wins while use_tf is true)."""
    rgb, _ = camvid_frame
    _check_tf_pose(harness, rgb)


def _check_tf_pose(harness: Harness, rgb: np.ndarray) -> None:
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy
    from tf2_msgs.msg import TFMessage

    h, w = rgb.shape[:2]
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 1.5, 0.0, 0.1, 0.0)  # not camvid.yaml's pose
    tf = TransformStamped()
    tf.header.frame_id, tf.child_frame_id = PARAMS["grid_frame"], "camvid_camera_optical"
    m = pose.matrix
    tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = m[:3, 3]
    q = matrix_quaternion(m[:3, :3])
    r = tf.transform.rotation
    r.x, r.y, r.z, r.w = q
    static = harness.node.create_publisher(TFMessage, "/tf_static", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    static.publish(TFMessage(transforms=[tf]))
    sub = [harness.subscribe("labels"), harness.subscribe("floor_grid")]
    try:
        res = harness.set_params(use_tf=True)
        assert res.successful
        info = camera_info(w, h)
        out = harness.request(rgb, info, ("labels", "floor_grid"))
        labels = np.frombuffer(out["labels"].data, np.uint8).reshape(h, w)
        proj = GroundProjector(config_spec(), CameraModel.from_camera_info(info), pose)
        card = read_card(REPO / "models" / "camvid.onnx")
        np.testing.assert_array_equal(grid_cells(out["floor_grid"]),
                                      proj.update(labels, card.traversable))
        assert harness.diagnostics()["floor_pose_source"] == "tf"
    finally:
        harness.set_params(use_tf=False)
        for s in sub:
            harness.node.destroy_subscription(s)
        harness.node.destroy_publisher(static)


def matrix_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation -> (x, y, z, w)."""
    w = np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2
    y = np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2
    z = np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2
    x = np.copysign(x, r[2, 1] - r[1, 2])
    y = np.copysign(y, r[0, 2] - r[2, 0])
    z = np.copysign(z, r[1, 0] - r[0, 1])
    return float(x), float(y), float(z), float(w)


def test_pose_from_transform_matches_camera_pose() -> None:
    """The tf conversion (ROS-free part of the tf path): a transform grid <- optical frame gives
    the same CameraPose as the equivalent camera_pose parameter."""
    from geometry_msgs.msg import TransformStamped

    from seg_ros.ros.floor_config import pose_from_transform

    want = CameraPose.from_xyz_rpy(0.3, -0.1, 1.2, 0.02, 0.25, -0.4)
    m = want.matrix
    tf = TransformStamped()
    t = tf.transform.translation
    t.x, t.y, t.z = (float(v) for v in m[:3, 3])
    r = tf.transform.rotation
    r.x, r.y, r.z, r.w = matrix_quaternion(m[:3, :3])
    np.testing.assert_allclose(pose_from_transform(tf).matrix, m, atol=1e-9)


def test_config_validation() -> None:
    """The parameters' ROS-free validation: defaults, origin_y default, refusals naming fixes."""
    from seg_ros.errors import ConfigError
    from seg_ros.ros.floor_config import SPECS, config_from

    names = ["Sky", "Road", "Pavement"]
    base = {s.name: s.default for s in SPECS}
    cfg = config_from(base, names, (1, 2))
    assert cfg.pose is None and cfg.traversable == (1, 2) and cfg.grid_frame == "base_footprint"
    assert (cfg.spec.origin_x, cfg.spec.origin_y) == (0.0, -5.0)  # -height / 2
    cfg = config_from({**base, "grid.traversable": ["road", "0"], "camera_pose":
                       [0.0, 0.0, 1.0, 0.0, 0.1, 0.0]}, names, (1, 2))
    assert cfg.traversable == (0, 1) and cfg.pose is not None
    for change, why in (({"camera_pose": [0.0, 0.0, 0.0, 0.0, 0.1, 0.0]}, "z > 0"),
                        ({"camera_pose": [0.0, 1.0]}, "6 finite numbers"),
                        ({"grid.resolution": 0.001, "grid.width": 1000.0}, "coarsen"),
                        ({"grid_frame": " "}, "grid_frame is empty"),
                        ({"grid.traversable": ["9"]}, "outside 0..2")):
        with pytest.raises(ConfigError, match=why):
            config_from({**base, **change}, names, (1,))


@pytest.mark.parametrize("arg, expect", [
    ("grid.resolution:=-0.05", "grid.resolution"),
    ("grid.resolution:=0.001", "coarsen the resolution"),
    ("camera_pose:=[0.0, 0.0, -0.5, 0.0, 0.1, 0.0]", "z > 0"),
])
def test_bad_grid_parameter_exits_with_one_line(arg: str, expect: str) -> None:
    """(d) At start an invalid floor parameter stops the node: exit 1, one line naming the fix."""
    r = subprocess.run(LAUNCH.command("-r", "__node:=floor_bad_param", "-p", arg),
                       capture_output=True, text=True, timeout=120, env=LAUNCH.env())
    assert r.returncode == 1, r.stderr[-2000:]
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and expect in errors[0], r.stdout + r.stderr
    assert "Traceback" not in r.stderr
