"""~/points from a real node process over real topics: colour + depth + camera_info in.

One node process for the module (``seg-ros node --params-file config/camvid.yaml``, the shipped
CamVid model) in a ROS domain of its own. The camera is a pinhole for CamVid's 480x360 frames
(fx = fy = 432 px, centred); the registered depth image is a tilted plane 2..6 m away, in
16UC1 millimetres, with a block of pixels that have no return (0). For the floor grid, the
depth is camvid.yaml's camera (1.2 m up, pitched 0.03 rad) over a flat floor with a wall 8 m
ahead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from cases.live_node import running  # noqa: E402

from seg_ros.live import (  # noqa: E402
    Collector,
    LiveClient,
    NodeLauncher,
    in_domain,
    pick_domain,
    wait_for,
)
from seg_ros.ros.convert import byte_array  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN = pick_domain()
NODE = "/depth_test_node"
CAM = "/rgbd_cam"
W, H, F = 480, 360, 432.0
LAUNCH = NodeLauncher(DOMAIN, Path(__file__).resolve().parents[2] / "config" / "camvid.yaml")
HOLE = (slice(100, 140), slice(200, 260))  # rows, columns without a depth return
PARAMS = yaml.safe_load(LAUNCH.params_file.read_text())["/**"]["ros__parameters"]


def depth_mm(width: int = W, height: int = H) -> np.ndarray:
    """A plane from 2 m (left) to 6 m (right) in millimetres; 0 in HOLE (scaled to size)."""
    u = np.arange(width) / max(width - 1, 1)
    mm = np.tile(np.round(2000 + 4000 * u), (height, 1)).astype(np.uint16)
    sy, sx = height / H, width / W
    mm[int(HOLE[0].start * sy):int(HOLE[0].stop * sy), int(HOLE[1].start * sx):
       int(HOLE[1].stop * sx)] = 0
    return mm


def camera_info(width: int, height: int, f: float, scale: int = 1) -> Any:
    """A pinhole whose pixel (u, v) looks where the colour camera's (scale u, scale v) does."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    cx, cy = (W - 1) / 2 / scale, (H - 1) / 2 / scale
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def image_msg(array: np.ndarray, encoding: str, header: Any) -> Any:
    from sensor_msgs.msg import Image

    h, w = array.shape[:2]
    a = np.ascontiguousarray(array)
    msg = Image(header=header, height=h, width=w, encoding=encoding, step=a.strides[0])
    msg.data = byte_array(a.data.cast("B"))
    return msg


class Harness:
    """Colour, depth and camera_info publishers plus a Collector of the node's outputs."""

    def __init__(self) -> None:
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.client = LiveClient(DOMAIN, name="depth_test")
        self.node = self.client.node
        self.image_pub = self.client.publisher(Image, f"{CAM}/image_raw", depth=5)
        self.info_pub = self.client.publisher(CameraInfo, f"{CAM}/camera_info", depth=5)
        self.depth_pub = self.client.publisher(Image, f"{CAM}/depth/image_raw", depth=5)
        self.depth_info_pub = self.client.publisher(CameraInfo, f"{CAM}/depth/camera_info",
                                                    depth=5)
        self.collector = Collector(self.client, NODE, ("labels", "confidence"))
        self.collector.add("points", PointCloud2)
        self._stamp = 0

    def close(self) -> None:
        self.collector.close()
        self.client.close()

    def header(self, offset_ns: int = 100_000_000) -> Any:
        from std_msgs.msg import Header

        self._stamp += 1
        h = Header(frame_id="rgbd_cam_color_optical_frame")
        h.stamp.sec, h.stamp.nanosec = 1_700_000_300 + self._stamp, offset_ns  # 1 s apart
        return h

    def request(self, rgb: np.ndarray, depth: np.ndarray | None, outputs: tuple[str, ...],
                depth_offset_ns: int = 0, depth_info: Any = None, expect: bool = True,
                timeout: float = 20.0, collector: Collector | None = None) -> dict[str, Any]:
        """Publish camera_info, the depth image (stamp + ``depth_offset_ns``; none if None)
        and the colour frame until ``outputs`` of the colour stamp arrive (in ``collector``,
        default the harness's)."""
        publish = self.publisher(rgb, depth, depth_offset_ns, depth_info)
        return (collector or self.collector).request(publish, self.header(), timeout, outputs,
                                                     expect)

    def publisher(self, rgb: np.ndarray, depth: np.ndarray | None, depth_offset_ns: int = 0,
                  depth_info: Any = None) -> Any:
        """publish(header): camera_info, the depth image (and its info) and the colour frame."""
        info = camera_info(W, H, F)

        def publish(header: Any) -> None:
            info.header = header
            self.info_pub.publish(info)
            if depth is not None:
                dh = type(header)(frame_id=header.frame_id)
                dh.stamp.sec = header.stamp.sec
                dh.stamp.nanosec = header.stamp.nanosec + depth_offset_ns
                if depth_info is not None:
                    depth_info.header = dh
                    self.depth_info_pub.publish(depth_info)
                self.depth_pub.publish(image_msg(depth, "16UC1", dh))
            self.image_pub.publish(image_msg(rgb, "rgb8", header))

        return publish

    def diagnostics(self) -> dict[str, str]:
        return self.client.diagnostics(NODE, timeout=5.0)[2]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from in_domain(DOMAIN, Harness)


@pytest.fixture(scope="module")
def node(harness: Harness, tmp_path_factory: Any) -> Iterator[Any]:
    proc = LAUNCH.start(["-r", f"__node:={NODE.strip('/')}", "-r", f"image:={CAM}/image_raw",
                         "-r", f"camera_info:={CAM}/camera_info",
                         "-r", f"depth/image:={CAM}/depth/image_raw",
                         "-r", f"depth/camera_info:={CAM}/depth/camera_info",
                         "-r", f"odom:={CAM}/odom"],
                        tmp_path_factory.mktemp("depth_node") / "node.log")
    with running(harness.client, NODE, proc, [harness.image_pub, harness.depth_pub],
                 ("points",)):
        yield proc


def cloud_arrays(msg: Any) -> dict[str, np.ndarray]:
    """Decode an organised PointCloud2 by its declared fields (offsets, datatypes)."""
    kinds = {2: "u1", 4: "<u2", 7: "<f4"}
    names = [f.name for f in msg.fields]
    dtype = np.dtype({"names": names,
                      "formats": [kinds[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    assert msg.row_step == msg.point_step * msg.width and not msg.is_bigendian
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.row_step)
    points = data.view(dtype).reshape(msg.height, msg.width)
    return {name: points[name] for name in names}


def labels_of(msg: Any) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width]


def test_points_decode_and_carry_the_labels(harness: Harness, node: Any,
                                            camvid_frame: Any) -> None:
    rgb, _ = camvid_frame
    mm = depth_mm()
    got = harness.request(rgb, mm, ("labels", "confidence", "points"))
    cloud = got["points"]
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("label", 12, 2, 1),
        ("confidence", 14, 2, 1)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (H, W, 16, 16 * W)
    assert cloud.is_dense is False
    assert cloud.header.frame_id == got["labels"].header.frame_id
    assert cloud.header.stamp == got["labels"].header.stamp
    fields = cloud_arrays(cloud)
    valid = mm > 0
    assert np.isnan(fields["z"][~valid]).all() and np.isnan(fields["x"][~valid]).all()
    z = mm / 1000.0
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(fields["z"][valid], z[valid], rtol=1e-6)
    np.testing.assert_allclose(fields["x"][valid], ((u - (W - 1) / 2) / F * z)[valid],
                               atol=1e-5)
    np.testing.assert_allclose(fields["y"][valid], ((v - (H - 1) / 2) / F * z)[valid],
                               atol=1e-5)
    np.testing.assert_array_equal(fields["label"], labels_of(got["labels"]))
    np.testing.assert_array_equal(fields["confidence"], labels_of(got["confidence"]))
    assert len(np.unique(fields["label"])) > 3  # a real segmentation, not a constant


def test_nearest_depth_within_the_skew_is_taken(harness: Harness, node: Any,
                                                camvid_frame: Any) -> None:
    rgb, _ = camvid_frame
    got = harness.request(rgb, depth_mm(), ("labels", "points"), depth_offset_ns=3_000_000)
    assert cloud_arrays(got["points"])["z"][0, 0] == pytest.approx(2.0)
    assert float(harness.diagnostics()["depth_last_skew_ms"]) == pytest.approx(3.0)


def test_a_depth_frame_that_never_arrives_is_counted_and_labels_still_flow(
        harness: Harness, node: Any, camvid_frame: Any) -> None:
    rgb, _ = camvid_frame
    harness.request(rgb, depth_mm(), ("points",))  # the depth stream runs
    before = int(harness.diagnostics()["depth_unmatched"])
    got = harness.request(rgb, None, ("labels", "points"), expect=False, timeout=2.0)
    assert "labels" in got and "points" not in got

    def counted() -> tuple[int, str] | None:
        level, message, values = harness.client.diagnostics(NODE, timeout=5.0)
        return (level, message) if int(values["depth_unmatched"]) > before else None

    # counted, and said: the period in which it was counted is WARN, naming the depth
    level, message = wait_for(counted, 10, "depth_unmatched to count the frame")
    assert level == 1 and "depth image" in message, (level, message)
    # beyond depth.max_skew_ms (10 ms): also unmatched
    got = harness.request(rgb, depth_mm(), ("labels", "points"), depth_offset_ns=30_000_000,
                          expect=False, timeout=2.0)
    assert "labels" in got and "points" not in got


def test_depth_at_half_resolution_uses_its_own_camera_info(harness: Harness, node: Any,
                                                           camvid_frame: Any) -> None:
    rgb, _ = camvid_frame
    mm = depth_mm(W // 2, H // 2)
    got = harness.request(rgb, mm, ("labels", "points"),
                          depth_info=camera_info(W // 2, H // 2, F / 2, scale=2))
    cloud = got["points"]
    assert (cloud.height, cloud.width) == (H // 2, W // 2)
    fields = cloud_arrays(cloud)
    labels = labels_of(got["labels"])
    np.testing.assert_array_equal(fields["label"], labels[::2, ::2])  # pixel (2u, 2v)
    assert np.isnan(fields["z"][mm == 0]).all()


def floor_scene_mm() -> np.ndarray:
    """camvid.yaml's camera over the floor z = 0 with a wall at x = 8 m (millimetres; rays
    above the horizon that miss the wall give no return). Independent pinhole geometry."""
    from seg_ros.floor import CameraPose

    t = CameraPose.from_xyz_rpy(*PARAMS["camera_pose"]).matrix
    v, u = np.mgrid[0:H, 0:W]
    d = np.stack([(u - (W - 1) / 2) / F, (v - (H - 1) / 2) / F, np.ones((H, W))], -1)
    d = d @ t[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(d[..., 2] < 0, -t[2, 3] / d[..., 2], np.inf)
        wall = np.where(d[..., 0] > 0, (8.0 - t[0, 3]) / d[..., 0], np.inf)
    depth = np.minimum(floor, wall)
    return np.where(depth < 30.0, np.round(depth * 1000), 0).astype(np.uint16)


def expected_grid(labels: np.ndarray, metres: np.ndarray, source: str) -> np.ndarray:
    """The node's floor grid computed here from its own labels and camvid.yaml."""
    from seg_ros.depth import DepthGridMarker, MarkingSettings, RayTable, fill_from_flat
    from seg_ros.floor import CameraModel, CameraPose, GridSpec, GroundProjector
    from seg_ros.model_card import read_card

    cam = CameraModel.from_camera_info(camera_info(W, H, F))
    pose = CameraPose.from_xyz_rpy(*PARAMS["camera_pose"])
    spec = GridSpec(PARAMS["grid.resolution"], PARAMS["grid.width"], PARAMS["grid.height"],
                    PARAMS["grid.origin_x"], PARAMS["grid.origin_y"], PARAMS["grid.max_range"],
                    PARAMS["grid_frame"])
    traversable = read_card(LAUNCH.params_file.parents[1] / "models" / "camvid.onnx").traversable
    projector = GroundProjector(spec, cam, pose)
    flat = projector.update(labels, traversable).copy()
    if source == "flat":
        return flat
    table = np.zeros(256, bool)
    table[list(traversable)] = True
    grid = DepthGridMarker(spec, pose, RayTable.for_camera(cam), MarkingSettings()).update(
        metres, labels, table)
    return fill_from_flat(grid, flat, projector.lut, metres) if source == "auto" else grid


@pytest.mark.parametrize("source", ["auto", "flat", "depth"])
def test_floor_grid_is_marked_from_depth_per_grid_source(harness: Harness, node: Any,
                                                         camvid_frame: Any, source: str) -> None:
    """~/floor_grid equals, cell for cell, the grid computed here from the node's labels and
    the depth image: depth-marked (auto: flat rule where a pixel has no return), or flat."""
    from nav_msgs.msg import OccupancyGrid

    from seg_ros.depth import depth_to_metres

    rgb, _ = camvid_frame
    assert harness.client.set_params(NODE, **{"grid.source": source})[0].successful
    collector = Collector(harness.client, NODE, ("labels", "floor_grid"),
                          types={"floor_grid": OccupancyGrid})
    try:
        mm = floor_scene_mm()
        got = harness.request(rgb, mm, ("labels", "floor_grid"), collector=collector)
    finally:
        collector.close()
    msg = got["floor_grid"]
    grid = np.asarray(msg.data, np.int8).reshape(msg.info.height, msg.info.width)
    metres = depth_to_metres("16UC1", H, W, 2 * W, mm.tobytes())
    want = expected_grid(labels_of(got["labels"]), metres, source)
    np.testing.assert_array_equal(grid, want)
    assert harness.diagnostics()["floor_grid_source"] == source
    if source != "flat":  # depth changes the grid: the wall 8 m ahead is an obstacle
        assert (want != expected_grid(labels_of(got["labels"]), metres, "flat")).sum() > 50
        col = round((8.0 - PARAMS["grid.origin_x"]) / PARAMS["grid.resolution"])
        assert (grid[:, col - 1:col + 1] == 100).sum() > 10


def test_inconsistent_depth_parameters_are_refused_with_the_reason(harness: Harness,
                                                                  node: Any) -> None:
    client = harness.client
    bad = client.set_params(NODE, **{"depth.min_obstacle_height": 0.01})[0]
    assert not bad.successful and "depth.floor_tolerance" in bad.reason
    bad = client.set_params(NODE, **{"grid.source": "lidar"})[0]
    assert not bad.successful and "auto" in bad.reason
    assert client.set_params(NODE, **{"depth.max_skew_ms": 20.0})[0].successful


def test_fused_map_takes_the_depth_grid(harness: Harness, node: Any, camvid_frame: Any) -> None:
    """One frame with depth (grid.source depth) and odometry at its stamp: ~/floor_map equals
    a FloorMap that fused the depth grid computed here, and holds the wall 8 m ahead."""
    from nav_msgs.msg import OccupancyGrid, Odometry

    from seg_ros.depth import depth_to_metres
    from seg_ros.floor import FloorMap, GridSpec, Pose2D
    from seg_ros.live import stamp_of
    from seg_ros.ros.floor_map import SPECS as MAP_SPECS
    from seg_ros.ros.floor_map import map_config_from

    rgb, _ = camvid_frame
    assert harness.client.set_params(NODE, **{"grid.source": "depth"})[0].successful
    odom = harness.client.publisher(Odometry, f"{CAM}/odom", depth=10)
    maps = Collector(harness.client, NODE, ("labels", "floor_map"),
                     types={"floor_map": OccupancyGrid})
    try:
        wait_for(lambda: odom.get_subscription_count() > 0 and all(
            sub.get_publisher_count() > 0 for sub in maps.subs), 10, "odom and the map")
        header = harness.header()
        t = stamp_of(header)
        for dt in (-20_000_000, 20_000_000):
            msg = Odometry()
            msg.header.frame_id, msg.child_frame_id = "odom", "base_footprint"
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t + dt, 10**9)
            msg.pose.pose.orientation.w = 1.0
            odom.publish(msg)
        wait_for(lambda: int(harness.diagnostics()["floor_map_odom_received"]) >= 2, 10,
                 "the odometry at the node")
        mm = floor_scene_mm()
        harness.publisher(rgb, mm)(header)  # once: a frame fused twice would count twice
        assert maps.wait(t, 20.0) is not None, "no labels or map for the frame"
        live, labels = maps.got["floor_map"][t], labels_of(maps.got["labels"][t])
    finally:
        maps.close()
        harness.node.destroy_publisher(odom)
    cfg = map_config_from({s.name: s.default for s in MAP_SPECS})
    fused = FloorMap(cfg.spec, origin=(live.info.origin.position.x, live.info.origin.position.y))
    spec = GridSpec(PARAMS["grid.resolution"], PARAMS["grid.width"], PARAMS["grid.height"],
                    PARAMS["grid.origin_x"], PARAMS["grid.origin_y"], PARAMS["grid.max_range"],
                    PARAMS["grid_frame"])
    metres = depth_to_metres("16UC1", H, W, 2 * W, mm.tobytes())
    fused.fuse(expected_grid(labels, metres, "depth"), spec, Pose2D(0.0, 0.0, 0.0), t / 1e9)
    cells = np.asarray(live.data, np.int8).reshape(live.info.height, live.info.width)
    np.testing.assert_array_equal(cells, fused.occupancy())
    x0 = live.info.origin.position.x
    wall = round((8.0 - x0) / live.info.resolution)
    assert (cells[:, wall - 2:wall + 2] == 100).sum() > 10


def test_inconsistent_depth_parameters_stop_the_start_with_one_line() -> None:
    import subprocess

    r = subprocess.run(LAUNCH.command("-p", "depth.min_obstacle_height:=0.01"), env=LAUNCH.env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "depth.min_obstacle_height" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr
