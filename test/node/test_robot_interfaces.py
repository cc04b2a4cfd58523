"""On a real robot: the managed node driven through every lifecycle transition over the real
lifecycle services, and the interfaces Nav2's semantic segmentation layer, nvblox and SLAM
consume (mask, compressed outputs, output size with a scaled camera_info, unlabelled pixels,
the enable switch, vision_msgs/LabelInfo), each against a live node process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rclpy.lifecycle")

from seg_ros.intrinsics import received_intrinsics, scaled_intrinsics
from seg_ros.live import (
    Collector,
    LiveClient,
    NodeProcess,
    param_args,
    pick_domain,
    wait_for,
)
from seg_ros.ros.convert import to_image_msg
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]
W, H = 96, 72
K = [80.0, 0.0, 47.5, 0.0, 80.0, 35.5, 0.0, 0.0, 1.0]
P = [80.0, 0.0, 47.5, 0.0, 0.0, 80.0, 35.5, 0.0, 0.0, 0.0, 1.0, 0.0]


class Rig:
    """A node process, a client publishing 96x72 frames with camera_info, and a collector."""

    def __init__(self, model: Path, name: str, values: dict[str, Any], lifecycle: bool = False,
                 env: dict[str, str] | None = None) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        domain = pick_domain()
        self.fqn = f"/{name}"
        module = ("-m", "seg_ros.cli", "node", *(("--lifecycle",) if lifecycle else ()))
        self.node = NodeProcess([*param_args({"model_path": model, "threads": 1, **values}),
                                 "-r", f"__node:={name}", "-r", f"image:=/{name}/in",
                                 "-r", f"camera_info:=/{name}/in_info"], domain, name=name,
                                module=module, env=env)
        self.client = LiveClient(domain)
        self.img_pub = self.client.publisher(Image, f"/{name}/in", depth=1)
        self.info_pub = self.client.publisher(CameraInfo, f"/{name}/in_info", depth=1)
        self.rgb = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (H, W, 3),
                                                                      dtype=np.uint8), (0, 0), 3)
        self.k = 0
        wait_for(lambda: self._alive() and self.img_pub.get_subscription_count() > 0
                 if not lifecycle else self._alive() and self._services(), 60, "the node")

    def _alive(self) -> bool:
        assert self.node.alive(), self.node.tail(30)
        return True

    def _services(self) -> bool:
        names = {n for n, _ in self.client.node.get_service_names_and_types()}
        return f"{self.fqn}/change_state" in names

    def send(self, header: Any = None) -> Any:
        """Publish camera_info and one frame stamped now (or with ``header``)."""
        from sensor_msgs.msg import CameraInfo
        from std_msgs.msg import Header

        if header is None:
            self.k += 1
            header = Header(frame_id="robot_camera")
            header.stamp.sec, header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        info = CameraInfo(header=header, width=W, height=H, distortion_model="plumb_bob")
        info.k, info.p, info.d = np.array(K), np.array(P), np.zeros(5)
        self.info_pub.publish(info)
        self.img_pub.publish(to_image_msg(self.rgb, "rgb8", header))
        return header

    def close(self) -> int | None:
        self.client.close()
        return self.node.stop()


# ------------------------------------------------------------------------------- lifecycle


def _transition(rig: Rig, label: str) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
           "deactivate": Transition.TRANSITION_DEACTIVATE,
           "cleanup": Transition.TRANSITION_CLEANUP,
           "shutdown": Transition.TRANSITION_INACTIVE_SHUTDOWN}
    req = ChangeState.Request(transition=Transition(id=ids[label]))
    return bool(rig.client.call(f"{rig.fqn}/change_state", ChangeState, req, timeout=60).success)


def _state(rig: Rig) -> str:
    from lifecycle_msgs.srv import GetState

    return rig.client.call(f"{rig.fqn}/get_state", GetState, GetState.Request()).current_state.label


def _labels_for(rig: Rig, collector: Collector, seconds: float) -> int:
    """Frames streamed at 10 Hz for ``seconds``; how many came back on ~/labels."""
    n0 = len(collector.got["labels"])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rig.send()
        time.sleep(0.1)
    time.sleep(0.3)
    return len(collector.got["labels"]) - n0


def test_lifecycle_transitions_over_the_real_services(tiny_model: Path, tmp_path: Path) -> None:
    rig = Rig(tiny_model, "managed_node", {}, lifecycle=True)
    try:
        col = Collector(rig.client, rig.fqn, ["labels"])
        assert _state(rig) == "unconfigured" and _labels_for(rig, col, 1.0) == 0
        assert _transition(rig, "configure") and _state(rig) == "inactive"
        assert _labels_for(rig, col, 1.0) == 0  # inactive: no frames taken
        assert _transition(rig, "activate") and _state(rig) == "active"
        assert _labels_for(rig, col, 1.5) > 0
        assert _transition(rig, "deactivate") and _state(rig) == "inactive"
        time.sleep(0.5)
        assert _labels_for(rig, col, 1.0) == 0
        assert _transition(rig, "cleanup") and _state(rig) == "unconfigured"
        missing = tmp_path / "missing.onnx"
        assert rig.client.set_params(rig.fqn, model_path=str(missing))[0].successful
        assert not _transition(rig, "configure") and _state(rig) == "unconfigured"
        wait_for(lambda: "configure failed" in rig.node.log() and str(missing) in rig.node.log(),
                 5, "the reason in the log")
        assert rig.client.set_params(rig.fqn, model_path=str(tiny_model))[0].successful
        assert _transition(rig, "configure") and _transition(rig, "activate")
        assert _labels_for(rig, col, 1.5) > 0  # configured again after a failure
        assert _transition(rig, "deactivate") and _transition(rig, "shutdown")
        assert _state(rig) == "finalized"
    finally:
        rc = rig.close()
    assert rc == 0 and "Traceback" not in rig.node.log(), rig.node.tail(30)


# ----------------------------------------------------------------- interfaces of a plain node


@pytest.fixture(scope="module")
def rig(tiny_model: Path) -> Iterator[Rig]:
    r = Rig(tiny_model, "robot_node", {"mask_classes": "[Road, Car]", "mask_value": 255})
    yield r
    assert r.close() == 0


def test_nav2_layer_contract_mask_and_compressed_outputs(rig: Rig) -> None:
    """labels/confidence mono8 with step == width and one header; ~/mask is the classes'
    pixels; PNG labels decode to the labels exactly, JPEG overlay near the raw overlay."""
    from sensor_msgs.msg import CompressedImage

    outs = ["labels", "confidence", "mask", "overlay", "labels/compressed",
            "overlay/compressed", "color_mask/compressed"]
    col = Collector(rig.client, rig.fqn, outs, types={o: CompressedImage for o in outs
                                                      if o.endswith("compressed")})
    try:
        got = col.request(rig.send, rig.send())
    finally:
        col.close()
    labels, conf = got["labels"], got["confidence"]
    for img in (labels, conf):
        assert (img.encoding, img.step, img.width, img.height) == ("mono8", W, W, H)
    assert labels.header == conf.header == got["mask"].header
    lab = np.frombuffer(labels.data, np.uint8).reshape(H, W)
    mask = np.frombuffer(got["mask"].data, np.uint8).reshape(H, W)
    assert ((mask == 255) == np.isin(lab, [3, 8])).all() and set(np.unique(mask)) <= {0, 255}
    png = cv2.imdecode(np.frombuffer(got["labels/compressed"].data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert png is not None and (png == lab).all() and "png" in got["labels/compressed"].format
    raw = np.frombuffer(got["overlay"].data, np.uint8).reshape(H, W, 3).astype(int)
    jpg = cv2.imdecode(np.frombuffer(got["overlay/compressed"].data, np.uint8), cv2.IMREAD_COLOR)
    assert jpg is not None and np.abs(jpg[..., ::-1].astype(int) - raw).mean() < 6
    assert got["overlay/compressed"].format.startswith("rgb8; jpeg compressed")


def test_unknown_below_marks_low_confidence_pixels_255(rig: Rig) -> None:
    assert rig.client.set_params(rig.fqn, unknown_below=0.9)[0].successful
    col = Collector(rig.client, rig.fqn, ["labels", "confidence"])
    try:
        got = col.request(rig.send, rig.send())
    finally:
        col.close()
        rig.client.set_params(rig.fqn, unknown_below=0.0)
    lab = np.frombuffer(got["labels"].data, np.uint8).reshape(H, W)
    conf = np.frombuffer(got["confidence"].data, np.uint8).reshape(H, W)
    low = conf < 0.9 * 255
    assert low.any() and (lab[low] == 255).all() and (lab[~low] != 255).all()


def test_output_size_with_a_scaled_camera_info(rig: Rig) -> None:
    """At output_size 48x36 the labels are 48x36 and ~/camera_info's rays are the camera's."""
    from sensor_msgs.msg import CameraInfo

    assert rig.client.set_params(rig.fqn, output_size="48x36")[0].successful
    col = Collector(rig.client, rig.fqn, ["labels", "camera_info"],
                    types={"camera_info": CameraInfo})
    try:
        got = col.request(rig.send, rig.send())
    finally:
        col.close()
        rig.client.set_params(rig.fqn, output_size="input")
    assert (got["labels"].width, got["labels"].height) == (48, 36)
    info = got["camera_info"]
    assert (info.width, info.height) == (48, 36) and info.header == got["labels"].header
    k_out = np.array(info.k).reshape(3, 3)
    for u, v in ((0.0, 0.0), (47.0, 35.0), (20.0, 11.0)):  # output pixel centres
        u_in, v_in = (u + 0.5) * W / 48 - 0.5, (v + 0.5) * H / 36 - 0.5  # the same point
        ray_out = np.linalg.solve(k_out, [u, v, 1.0])
        ray_in = np.linalg.solve(np.array(K).reshape(3, 3), [u_in, v_in, 1.0])
        assert np.allclose(ray_out, ray_in, atol=1e-9)
    src = received_intrinsics(W, H, K, P)
    assert np.allclose(info.p, scaled_intrinsics(src, 48, 36).p)


def test_enable_pauses_and_resumes_without_drops(rig: Rig) -> None:
    from std_srvs.srv import SetBool

    col = Collector(rig.client, rig.fqn, ["labels"])
    try:
        before = rig.client.diagnostics(rig.fqn)[2]
        res = rig.client.call(f"{rig.fqn}/enable", SetBool, SetBool.Request(data=False))
        assert res.success and res.message == "paused"
        assert _labels_for(rig, col, 1.5) == 0
        _lvl, msg, values = rig.client.diagnostics(rig.fqn, timeout=5)
        assert _lvl == 0 and "paused" in msg, msg
        assert int(values["frames_paused"]) > int(before["frames_paused"])
        assert int(values["frames_dropped"]) == int(before["frames_dropped"])
        assert rig.client.call(f"{rig.fqn}/enable", SetBool, SetBool.Request(data=True)).success
        assert _labels_for(rig, col, 1.5) > 0
    finally:
        col.close()


# ------------------------------------------------------------------------- vision_msgs


LATE_SUBSCRIBER = """
import json, sys, time, rclpy
from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
from vision_msgs.msg import LabelInfo
rclpy.init()
node = rclpy.create_node("late_vision_listener")
got = []
qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(LabelInfo, sys.argv[1], got.append, qos)
end = time.monotonic() + 20
while not got and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print(json.dumps({"classes": [[c.class_id, c.class_name] for c in got[0].class_map],
                  "threshold": got[0].threshold} if got else {}))
"""


def test_vision_label_info_latched_to_a_late_subscriber(tiny_model: Path) -> None:
    domain = pick_domain()
    node = NodeProcess(param_args({"model_path": tiny_model, "threads": 1,
                                   "unknown_below": 0.25}), domain, name="vision_node")
    try:
        wait_for(lambda: "segmenting" in node.log() or not node.alive(), 60, "the node")
        time.sleep(1.0)  # the subscriber joins late: only transient-local reaches it
        out = subprocess.run([sys.executable, "-c", LATE_SUBSCRIBER,
                              "/vision_node/label_info/vision"],
                             env=local_env(domain), capture_output=True,
                             text=True, timeout=60)
        got = json.loads(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}")
    finally:
        assert node.stop() == 0
    assert got, out.stderr[-2000:]
    assert got["classes"][:2] == [[0, "Sky"], [1, "Building"]] and len(got["classes"]) == 11
    assert got["threshold"] == pytest.approx(0.25)
