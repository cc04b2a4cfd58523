"""Several cameras, one node, one engine, over real topics: a node with ``cameras:=[front,
left, rear]`` (rgb8 640x480, bgr8 320x240, rgba8 800x600) and a single-camera node on the same
real ONNX model (dynamic batch), both real processes.

Each camera's labels equal the single-camera node's on the same frame, pixel for pixel, with that
camera's header, while the three frames go through the engine as one batch; flooding one camera
at 4x leaves the others' output rates within 10 % of their input rates; under load the
diagnostics report batches of more than one frame and per-camera counters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from seg_ros.live import (  # noqa: E402
    LiveClient,
    NodeProcess,
    camvid_frames,
    make_tiny_model,
    pick_domain,
    stamp_now,
    wait_for,
)
from seg_ros.ros.convert import byte_array  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MULTI, SINGLE = "/multi_cam", "/single_cam"


@dataclass
class Cam:
    name: str
    encoding: str
    size: tuple[int, int]  # (W, H) px
    msg: Any = None


FRONT_POSE = "[0.0, 0.0, 1.2, 0.0, 0.3, 0.0]"  # x y z roll pitch yaw: 1.2 m up, pitched down
REAR_POSE = "[-0.5, 0.0, 1.2, 0.0, 0.3, 3.14159]"  # looking backwards
CAMS = (Cam("front", "rgb8", (640, 480)), Cam("left", "bgr8", (320, 240)),
        Cam("rear", "rgba8", (800, 600)))


def image_msg(rgb: np.ndarray, encoding: str) -> Image:
    """A raw Image of ``rgb`` in ``encoding`` (rgb8, bgr8 or rgba8)."""
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1],
              "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])}[encoding]
    pixels = np.ascontiguousarray(pixels)
    h, w, c = pixels.shape
    return Image(height=h, width=w, encoding=encoding, step=w * c,
                 data=byte_array(pixels.tobytes()))


class Rig:
    """Both nodes, the client, a publisher per camera input (and the single node's input)."""

    def __init__(self, model: Path, tmp: Path) -> None:
        self.domain = pick_domain()
        common = ["-p", f"model_path:={model}", "-p", "threads:=1", "-p", "use_tf:=false",
                  "-p", "grid.origin_x:=-5.0"]  # the grid around the robot: the rear sees it too
        self.multi = NodeProcess([*common, "-p", "cameras:=[front, left, rear]",
                                  "-p", f"front.camera_pose:={FRONT_POSE}",
                                  "-p", f"rear.camera_pose:={REAR_POSE}"], self.domain,
                                 name=MULTI[1:], log_path=tmp / "multi.log")
        self.single = NodeProcess([*common, "-p", f"camera_pose:={FRONT_POSE}",
                                   "-r", "image:=/single_in/image", "-r",
                                   "camera_info:=/single_in/camera_info"], self.domain,
                                  name=SINGLE[1:], log_path=tmp / "single.log")
        self.client = LiveClient(self.domain, name="cameras_test")
        self.pubs = {c.name: self.client.publisher(Image, f"/{c.name}/image", depth=1)
                     for c in CAMS}
        self.info_pubs = {c.name: self.client.publisher(CameraInfo, f"/{c.name}/camera_info")
                          for c in CAMS}
        self.single_pub = self.client.publisher(Image, "/single_in/image", depth=1)
        self.single_info = self.client.publisher(CameraInfo, "/single_in/camera_info")
        frames = camvid_frames(3)
        for cam, rgb in zip(CAMS, frames):
            import cv2

            cam.msg = image_msg(cv2.resize(rgb, cam.size, interpolation=cv2.INTER_AREA),
                                cam.encoding)
        for proc, pub, node, outs in (
                (self.multi, self.pubs["rear"], MULTI, [f"{c.name}/labels" for c in CAMS]),
                (self.single, self.single_pub, SINGLE, ["labels"])):
            self.client.wait_ready(proc, pub, node, outs, timeout=90)

    def close(self) -> None:
        self.client.close()
        codes = [self.multi.stop(), self.single.stop()]
        assert codes == [0, 0], f"exit codes {codes}:\n{self.multi.tail()}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("cameras")
    r = Rig(make_tiny_model(tmp / "tiny_dynamic.onnx", batch=0), tmp)
    try:
        yield r
    finally:
        r.close()


def labels_of(msg: Image) -> np.ndarray:
    assert msg.encoding == "mono8" and msg.step == msg.width
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


def test_each_camera_equals_the_single_camera_node_pixel_for_pixel(rig: Rig) -> None:
    """The three frames are published together with a batch window open, so the engine runs
    them as one batch (checked in the diagnostics) and each camera's labels still equal the
    single-camera node's (a batch-1 call) on the same frame, with that camera's header."""
    ok = rig.client.set_params(MULTI, batch_wait_ms=300.0)
    assert ok[0].successful, ok[0].reason
    multi = rig.client.collect(MULTI, [f"{c.name}/labels" for c in CAMS])
    single = rig.client.collect(SINGLE, ["labels"])
    stamps: dict[str, int] = {}
    complete = 0
    for _ in range(10):  # two rounds in a row complete: discovery has settled
        for cam in CAMS:
            stamps[cam.name] = stamp_now(cam.msg, f"{cam.name}_optical")
            rig.pubs[cam.name].publish(cam.msg)
        try:
            wait_for(lambda: all(stamps[c.name] in multi.got[f"{c.name}/labels"] for c in CAMS),
                     3.0, "labels of all three cameras")
            complete += 1
        except TimeoutError:
            complete = 0
        if complete == 2:
            break
    assert complete == 2, f"labels of the three cameras did not come:\n{rig.multi.tail()}"
    got = {c.name: multi.got[f"{c.name}/labels"][stamps[c.name]] for c in CAMS}
    for cam in CAMS:
        msg = got[cam.name]
        assert msg.header.frame_id == f"{cam.name}_optical"
        assert msg.header.stamp == cam.msg.header.stamp
        assert (msg.width, msg.height) == cam.size
        ref = single.request(sender(rig.single_pub, cam), cam.msg.header,
                             outputs=["labels"])["labels"]
        np.testing.assert_array_equal(labels_of(msg), labels_of(ref), err_msg=cam.name)
    _, _, values = rig.client.diagnostics(MULTI, after=time.monotonic())
    assert int(values["batch_size_max"]) == 3, values  # the frames above went as one batch
    assert rig.client.set_params(MULTI, batch_wait_ms=0.0)[0].successful


def publish_at(pub: Any, cam: Cam, hz: float, seconds: float, sent: list[int]) -> None:
    """Publish ``cam``'s frame at ``hz`` for ``seconds``, a fresh stamp each time."""
    t0 = time.monotonic()
    k = 0
    while (t := time.monotonic()) < t0 + seconds:
        sent.append(stamp_now(cam.msg, f"{cam.name}_optical"))
        pub.publish(cam.msg)
        k += 1
        time.sleep(max(0.0, t0 + k / hz - t))


def flood(rig: Rig, rates: dict[str, float], seconds: float) -> dict[str, list[int]]:
    sent: dict[str, list[int]] = {c.name: [] for c in CAMS}
    threads = [threading.Thread(target=publish_at, args=(rig.pubs[c.name], c, rates[c.name],
                                                         seconds, sent[c.name]))
               for c in CAMS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.0)  # the last frames' outputs
    return sent


def test_one_camera_flooding_at_4x_does_not_starve_the_others(rig: Rig) -> None:
    counter = rig.client.count_outputs(MULTI, [f"{c.name}/labels" for c in CAMS])
    try:
        sent = flood(rig, {"front": 40.0, "left": 10.0, "rear": 10.0}, seconds=8.0)
        out = {c.name: counter.stamps(f"{c.name}/labels") & set(sent[c.name]) for c in CAMS}
    finally:
        counter.close()
    ratio = {name: len(out[name]) / len(sent[name]) for name in sent}
    assert len(sent["front"]) > 3.5 * len(sent["left"])
    for name in ("left", "rear"):  # output rate within 10 % of the input rate
        assert ratio[name] >= 0.9, (ratio, {k: len(v) for k, v in sent.items()})
    assert ratio["front"] > 0.2, ratio  # the flooding camera is served too, latest frame wins


def test_diagnostics_report_batches_and_per_camera_counters_under_load(rig: Rig) -> None:
    counter = rig.client.count_outputs(MULTI, [f"{c.name}/labels" for c in CAMS])
    try:
        flood(rig, {"front": 30.0, "left": 30.0, "rear": 30.0}, seconds=5.0)
        _, _, values = rig.client.diagnostics(MULTI, after=time.monotonic())
    finally:
        counter.close()
    assert int(values["batch_size_max"]) > 1, values
    assert int(values["batches_multi"]) > 0 and float(values["batch_size_mean"]) > 1.0, values
    assert values["cameras"] == "front, left, rear"
    for cam in CAMS:
        assert int(values[f"{cam.name}.frames_processed"]) > 50, values
        received = int(values[f"{cam.name}.frames_received"])
        assert received >= int(values[f"{cam.name}.frames_processed"])
        assert float(values[f"{cam.name}.latency_receive_median_ms"]) > 0
    assert "/front/image" in values["input_topic"] and "/rear/image" in values["input_topic"]


def test_a_camera_named_twice_is_refused_with_the_fix(tmp_path: Path) -> None:
    proc = NodeProcess(["-p", "cameras:=[front, front]"], pick_domain(), name="twice",
                       log_path=tmp_path / "twice.log")
    assert proc.proc.wait(60) == 1
    proc.stop()
    lines = [ln for ln in proc.log().splitlines() if "error" in ln]
    assert lines and "lists a camera twice" in lines[-1] and "give each camera once" in lines[-1]


def sender(pub: Any, cam: Cam, info_pub: Any = None) -> Callable[[Any], None]:
    """``publish(header)`` for ``Collector.request``: ``cam``'s frame with that header on
    ``pub``, then its camera_info on ``info_pub`` when given."""

    def publish(header: Any) -> None:
        cam.msg.header = header
        pub.publish(cam.msg)
        if info_pub is not None:
            info_pub.publish(camera_info(cam))

    return publish


def camera_info(cam: Cam) -> CameraInfo:
    """A plumb_bob pinhole of the camera's size, focal length 0.8 x its width."""
    w, h = cam.size
    f = 0.8 * w
    return CameraInfo(width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[f, 0.0, w / 2, 0.0, 0.0, f, h / 2, 0.0, 0.0, 0.0, 1.0, 0.0])


def test_floor_grid_per_camera_and_merged(rig: Rig) -> None:
    """~/front/floor_grid equals the single-camera node's ~/floor_grid for the same frame,
    camera_info and pose; with grid.merge the merged ~/floor_grid is the cell-wise merge of the
    front and rear grids (occupied wins, then free), in grid_frame with the frame's stamp."""
    from nav_msgs.msg import OccupancyGrid

    from seg_ros.ros.camera_floor import merge_grids

    assert rig.client.set_params(MULTI, **{"grid.merge": True})[0].successful
    front, rear = CAMS[0], CAMS[2]
    for cam in (front, rear):
        rig.info_pubs[cam.name].publish(camera_info(cam))
    rig.single_info.publish(camera_info(front))
    types = {o: OccupancyGrid for o in ("front/floor_grid", "rear/floor_grid", "floor_grid")}
    multi = rig.client.collect(MULTI, list(types), types=types)
    single = rig.client.collect(SINGLE, ["floor_grid"], types={"floor_grid": OccupancyGrid})
    grids: dict[str, Any] = {}
    for _ in range(20):  # lookup tables are built beside the worker: the first frames wait
        for cam in (front, rear):
            rig.info_pubs[cam.name].publish(camera_info(cam))
            stamp_now(cam.msg, f"{cam.name}_optical")
            rig.pubs[cam.name].publish(cam.msg)
            time.sleep(0.1)
        time.sleep(0.3)
        s_front, s_rear = (stamp_of_msg(front.msg), stamp_of_msg(rear.msg))
        with rig.client.lock:
            f = multi.got["front/floor_grid"].get(s_front)
            r = multi.got["rear/floor_grid"].get(s_rear)
            m = multi.got["floor_grid"].get(s_rear)
        if f is not None and r is not None and m is not None:
            grids = {"front": f, "rear": r, "merged": m}
            break
    assert grids, f"no per-camera and merged grids:\n{rig.multi.tail()}"
    cells = {k: np.asarray(v.data, np.int8).reshape(v.info.height, v.info.width)
             for k, v in grids.items()}
    assert grids["front"].header.frame_id == grids["merged"].header.frame_id == "base_footprint"
    assert (cells["front"] != -1).any() and (cells["rear"] != -1).any()
    np.testing.assert_array_equal(cells["merged"], merge_grids([cells["front"],
                                                                cells["rear"]]))
    ref = single.request(sender(rig.single_pub, front, rig.single_info), grids["front"].header,
                         outputs=["floor_grid"], timeout=20)["floor_grid"]
    np.testing.assert_array_equal(np.asarray(ref.data, np.int8), np.asarray(grids["front"].data,
                                                                              np.int8))
    _, _, values = rig.client.diagnostics(MULTI, after=time.monotonic())
    assert int(values["front.floor_grids_published"]) >= 1, values


def stamp_of_msg(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_a_bad_frame_on_one_camera_is_rejected_for_that_camera_only(rig: Rig) -> None:
    left, front = CAMS[1], CAMS[0]
    bad = Image(height=240, width=320, encoding="bgr8", step=960,
                data=byte_array(bytes(1000)))  # far shorter than step x height
    multi = rig.client.collect(MULTI, ["front/labels"])
    for _ in range(3):
        stamp_now(bad, "left_optical")
        rig.pubs[left.name].publish(bad)
        time.sleep(0.1)
    got = multi.request(sender(rig.pubs[front.name], front), _header("front_optical"),
                        outputs=["front/labels"])
    assert got["front/labels"].header.frame_id == "front_optical"
    _, _, values = rig.client.diagnostics(MULTI, after=time.monotonic())
    assert int(values["left.frames_rejected"]) >= 1, values
    assert values["front.frames_rejected"] == "0" and values["rear.frames_rejected"] == "0"
    assert "data" in values["last_error"] or "step" in values["last_error"], values


def _header(frame_id: str) -> Any:
    from std_msgs.msg import Header

    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns(), 10**9)
    return h


def test_managed_node_with_cameras_over_the_lifecycle_services(tmp_path: Path) -> None:
    """configure, activate (frames of camera b come out), deactivate (none), activate again:
    each camera's subscriptions and its intake thread follow the node's state."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    domain, name = pick_domain(), "managed_cams"
    proc = NodeProcess(["-p", f"model_path:={make_tiny_model(tmp_path / 'm.onnx', batch=0)}",
                        "-p", "threads:=1", "-p", "cameras:=[a, b]", "-r", f"__node:={name}"],
                       domain, name=name, module=("-m", "seg_ros.cli", "node", "--lifecycle"),
                       log_path=tmp_path / "managed.log")
    client = LiveClient(domain)
    try:
        pub = client.publisher(Image, "/b/image", depth=1)
        col = client.collect(f"/{name}", ["b/labels"])
        cam = Cam("b", "rgb8", (320, 240), image_msg(camvid_frames(1, (320, 240))[0], "rgb8"))

        def change(tid: int) -> bool:
            req = ChangeState.Request(transition=Transition(id=tid))
            return bool(client.call(f"/{name}/change_state", ChangeState, req, timeout=60).success)

        def labels_for(seconds: float) -> int:
            n0, end = len(col.got["b/labels"]), time.monotonic() + seconds
            while time.monotonic() < end:
                stamp_now(cam.msg, "b_optical")
                pub.publish(cam.msg)
                time.sleep(0.1)
            time.sleep(0.3)
            return len(col.got["b/labels"]) - n0

        wait_for(lambda: proc.alive() and f"/{name}/change_state" in {
            n for n, _ in client.node.get_service_names_and_types()}, 60, "the managed node")
        assert change(Transition.TRANSITION_CONFIGURE) and labels_for(1.0) == 0
        assert change(Transition.TRANSITION_ACTIVATE) and labels_for(2.0) > 0
        assert change(Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.5)
        assert labels_for(1.0) == 0
        assert change(Transition.TRANSITION_ACTIVATE) and labels_for(2.0) > 0
    finally:
        client.close()
        rc = proc.stop()
    assert rc == 0 and "Traceback" not in proc.log(), proc.tail(30)


def test_a_camera_grid_that_cannot_be_made_is_named_in_diagnostics(rig: Rig) -> None:
    """left has no left.camera_pose (and no tf): while ~/left/floor_grid is subscribed and
    images arrive, the watchdog names the silent output and why."""
    from nav_msgs.msg import OccupancyGrid

    left = CAMS[1]
    col = rig.client.collect(MULTI, ["left/floor_grid"], types={"left/floor_grid": OccupancyGrid})
    try:
        end = time.monotonic() + 6.0
        while time.monotonic() < end:
            rig.info_pubs[left.name].publish(camera_info(left))
            stamp_now(left.msg, "left_optical")
            rig.pubs[left.name].publish(left.msg)
            time.sleep(0.1)
        level, _, values = rig.client.diagnostics(MULTI, after=time.monotonic())
    finally:
        col.close()
    assert level >= 1 and "left/floor_grid silent" in values["stalled_outputs"], values
    assert "set left.camera_pose" in values["stalled_outputs"], values["stalled_outputs"]
    assert not col.got["left/floor_grid"]


def test_compressed_cameras_with_two_workers(tmp_path: Path) -> None:
    """input_transport compressed: each camera reads c/image/compressed (JPEG and PNG here);
    two workers share the cameras' batches and each camera's labels stay in arrival order."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    domain, name = pick_domain(), "compressed_cams"
    proc = NodeProcess(["-p", f"model_path:={make_tiny_model(tmp_path / 'm.onnx', batch=0)}",
                        "-p", "threads:=1", "-p", "workers:=2", "-p", "cameras:=[a, b]",
                        "-p", "input_transport:=compressed"], domain, name=name,
                       log_path=tmp_path / "compressed.log")
    client = LiveClient(domain)
    try:
        pubs = {c: client.publisher(CompressedImage, f"/{c}/image/compressed", depth=1)
                for c in "ab"}
        counter = client.count_outputs(f"/{name}", ["a/labels", "b/labels"])
        client.wait_ready(proc, pubs["b"], f"/{name}", ["a/labels", "b/labels"], timeout=90)
        frames = camvid_frames(2, (480, 360))
        msgs = {"a": CompressedImage(format="jpeg", data=byte_array(
                    cv2.imencode(".jpg", frames[0][..., ::-1])[1].tobytes())),
                "b": CompressedImage(format="png", data=byte_array(
                    cv2.imencode(".png", frames[1][..., ::-1])[1].tobytes()))}
        sent: dict[str, list[int]] = {"a": [], "b": []}
        for _ in range(40):
            for c, msg in msgs.items():
                sent[c].append(stamp_now(msg, f"{c}_optical"))
                pubs[c].publish(msg)
            time.sleep(0.05)
        time.sleep(1.0)
        for c in "ab":
            got = counter.got[f"{c}/labels"]
            arrived = [s for s in sent[c] if s in got]
            assert len(arrived) > 10, (c, len(arrived), proc.tail())
            times = [got[s] for s in arrived]
            assert times == sorted(times), f"{c}: labels out of arrival order"
        counter.close()
    finally:
        client.close()
        rc = proc.stop()
    assert rc == 0 and "Traceback" not in proc.log(), proc.tail(30)
