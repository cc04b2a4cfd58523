"""The node as a user drives it with the real ROS 2 tools (built into the venv by
`make ros-tools`), each in a process of its own: ``ros2 launch`` of both launch files with a
user's params file (every value honoured; input_transport left to the file), ``ros2 lifecycle
set`` through every transition, ``ros2 param set`` (good, misspelt, wrong type), ``ros2 topic
hz`` on ~/labels and ``ros2 topic echo --once`` on both label_info topics.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import launch_ros  # noqa: F401 - built into the venv by `make ros-tools`: never skipped
import pytest
import vision_msgs.msg  # noqa: F401
import yaml

from seg_ros.live import LiveClient, camvid_frames, stream, wait_for
from seg_ros.live.domains import pick_domain
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROS2 = str(Path(sys.executable).with_name("ros2"))
NODE = "/segmentation_node"
BASE = yaml.safe_load((REPO / "config" / "camvid.yaml").read_text())["/**"]["ros__parameters"]
# A user's file: every value other than camvid.yaml's default where the node allows it.
USER = {**BASE, "threads": 1, "overlay_alpha": 0.35, "max_rate_hz": 40.0, "jpeg_quality": 70,
        "diagnostics.stall_s": 3.0, "class_filter": ["Road", "Car"], "unknown_below": 0.05,
        "mask_classes": ["Pedestrian"], "mask_value": 255, "publish_overlay": False,
        "qos.depth": 2, "grid.resolution": 0.2, "grid.width": 12.0, "grid.origin_y": -6.0,
        "grid.height": 12.0, "map.half_life": 15.0, "map.max_pose_age": 0.2,
        "map.rate_hz": 1.0, "depth.max_skew_ms": 20.0, "depth.grid_stride": 3,
        "camera_pose": [0.0, 0.0, 1.0, 0.0, 0.1, 0.0]}


class Tools:
    """``ros2`` commands and a ``ros2 launch`` in one private ROS domain."""

    def __init__(self, domain: int, log_dir: Path) -> None:
        self.domain, self.log_dir = domain, log_dir
        self.env = {**local_env(domain), "AMENT_PREFIX_PATH": sys.prefix,
                    "PYTHONUNBUFFERED": "1"}
        self.launches: list[tuple[subprocess.Popen, Path]] = []

    def run(self, *args: str, timeout: float = 60.0, stdout_only: bool = False) -> str:
        """``ros2 args``; stdout + stderr (any exit status), or stdout alone."""
        out = subprocess.run([ROS2, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        return out.stdout if stdout_only else out.stdout + out.stderr

    def launch(self, *args: str) -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"launch_{len(self.launches)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([ROS2, "launch", "seg_ros", *args], env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.launches.append((proc, log))
        return proc, log

    def stop_launch(self, proc: subprocess.Popen, log: Path) -> None:
        """Ctrl-C, as a user ends ``ros2 launch``: it stops the node and exits."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                raise AssertionError(
                    f"ros2 launch ignored Ctrl-C:\n{log.read_text()[-3000:]}") from None

    def close(self) -> None:
        for proc, log in self.launches:
            self.stop_launch(proc, log)
        self.run("daemon", "stop", timeout=30)  # a verb that started it leaves none behind


def write_params(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


def dumped(tools: Tools, node: str) -> dict[str, Any]:
    """``ros2 param dump`` of ``node``, flattened to dotted names."""
    text = tools.run("param", "dump", node, stdout_only=True)
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return {}
    out: dict[str, Any] = {}

    def flat(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                flat(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value
    flat("", next(iter(doc.values()))["ros__parameters"])
    return out


def assert_honoured(values: dict[str, Any], got: dict[str, Any]) -> None:
    """Every value of the params file is the node's."""
    wrong = {}
    for name, want in values.items():
        have = got.get(name)
        same = (math.isclose(float(have), float(want)) if isinstance(want, float)
                and isinstance(have, (int, float)) else have == want)
        if not same:
            wrong[name] = (want, have)
    assert not wrong, f"params file values not honoured (want, node): {wrong}"


def node_parameters(domain: int, node: str, names: list[str]) -> dict[str, Any]:
    """``names`` of ``node`` read with rcl_interfaces/GetParameters."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    os.environ["ROS_DOMAIN_ID"] = str(domain)
    client = LiveClient(domain, name="cli_params")
    try:
        res = client.call(f"{node}/get_parameters", GetParameters,
                          GetParameters.Request(names=names), timeout=30.0)
        return {n: parameter_value_to_python(v) for n, v in zip(names, res.values)}
    finally:
        client.close()


def lifecycle_state(tools: Tools) -> str:
    return tools.run("lifecycle", "get", NODE, stdout_only=True).split()[0]


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Iterator[Tools]:
    t = Tools(pick_domain(), tmp_path_factory.mktemp("ros2_cli"))
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def managed(tools: Tools, tmp_path_factory) -> Iterator[Path]:
    """``ros2 launch seg_ros segmentation.launch.py lifecycle:=true params_file:=<user's>``;
    the launch log."""
    params = write_params(tmp_path_factory.mktemp("params") / "user.yaml", USER)
    proc, log = tools.launch("segmentation.launch.py", "lifecycle:=true",
                             f"params_file:={params}", "camera:=/cli_cam")

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return "unconfigured" in tools.run("lifecycle", "get", NODE, timeout=30)
    wait_for(up, 120, "the managed node, unconfigured")
    yield log
    tools.stop_launch(proc, log)


def test_launch_honours_every_value_of_the_params_file(tools: Tools, managed: Path) -> None:
    """Configured (the floor and map parameters are declared then), the node has every value
    of the user's file."""
    out = tools.run("lifecycle", "set", NODE, "configure", timeout=120)
    assert "Transitioning successful" in out, (out, managed.read_text()[-2000:])
    assert_honoured(USER, dumped(tools, NODE))


def test_lifecycle_set_through_every_transition(tools: Tools, managed: Path) -> None:
    """(configured above) activate, deactivate, cleanup, configure, activate: each answered
    "Transitioning successful" and the node in the state it names; the node serves labels
    while active (checked by the tests below, which leave it active)."""
    if lifecycle_state(tools) == "unconfigured":
        assert "successful" in tools.run("lifecycle", "set", NODE, "configure", timeout=120)
    for transition, state in (("activate", "active"),
                              ("deactivate", "inactive"), ("cleanup", "unconfigured"),
                              ("configure", "inactive"), ("activate", "active")):
        out = tools.run("lifecycle", "set", NODE, transition, timeout=120)
        assert "Transitioning successful" in out, (transition, out, managed.read_text()[-2000:])
        assert lifecycle_state(tools) == state, transition
    listed = tools.run("lifecycle", "list", NODE)
    assert "deactivate" in listed and "shutdown" in listed, listed


def test_param_set_good_misspelt_and_wrong_type(tools: Tools, managed: Path) -> None:
    out = tools.run("param", "set", NODE, "overlay_alpha", "0.6")
    assert "Set parameter successful" in out, out
    assert "0.6" in tools.run("param", "get", NODE, "overlay_alpha")
    out = tools.run("param", "set", NODE, "overlay_alpah", "0.6")
    assert "Set parameter successful" not in out and "failed" in out.lower(), out
    out = tools.run("param", "set", NODE, "overlay_alpha", "bright")
    assert "Set parameter successful" not in out and "failed" in out.lower(), out
    assert "0.6" in tools.run("param", "get", NODE, "overlay_alpha")  # unchanged by the bad sets


def test_topic_hz_on_labels_and_echo_once_on_label_info(tools: Tools, managed: Path) -> None:
    from sensor_msgs.msg import Image

    from seg_ros.ros.convert import byte_array

    assert lifecycle_state(tools) == "active" or "Transitioning successful" in tools.run(
        "lifecycle", "set", NODE, "configure", timeout=120) + tools.run(
        "lifecycle", "set", NODE, "activate", timeout=120)
    rgb = camvid_frames(1, (480, 360))[0]
    msg = Image(height=360, width=480, encoding="rgb8", step=480 * 3)
    msg.data = byte_array(rgb.tobytes())
    os.environ["ROS_DOMAIN_ID"] = str(tools.domain)
    client = LiveClient(tools.domain, name="cli_test")
    pub = client.publisher(Image, "/cli_cam/image_raw", depth=2, reliable=False)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            stream(pub, [msg], 5.0, 1.0, frame_id="cli_cam_optical")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        hz = subprocess.Popen([ROS2, "topic", "hz", f"{NODE}/labels"], env=tools.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
        lines: list[str] = []
        try:
            assert hz.stdout is not None
            out = hz.stdout

            def rate() -> float | None:
                line = out.readline()
                lines.append(line)
                m = re.search(r"average rate: ([0-9.]+)", line)
                return float(m.group(1)) if m and len(lines) > 4 else None
            got = wait_for(rate, 90, "ros2 topic hz to report a rate", poll=0.0)
        finally:
            os.killpg(hz.pid, signal.SIGINT)
            hz.wait(timeout=20)
        assert 1.0 < got < 10.0, lines[-10:]  # 5 Hz in, the node keeps up (max_rate_hz 40)
    finally:
        stop.set()
        feeder.join(timeout=10)
        client.close()
    info = tools.run("topic", "echo", "--once", f"{NODE}/label_info")
    assert "Sky" in info and "Road" in info and "labels_encoding" in info, info
    vision = tools.run("topic", "echo", "--once", f"{NODE}/label_info/vision")
    assert "class_name: Sky" in vision and "threshold: 0.05" in vision, vision
    assert "vision_msgs" in tools.run("topic", "type", f"{NODE}/label_info/vision")


def test_lifecycle_shutdown(tools: Tools, managed: Path) -> None:
    out = tools.run("lifecycle", "set", NODE, "shutdown", timeout=120)
    assert "Transitioning successful" in out, out
    assert lifecycle_state(tools) == "finalized"


def test_cameras_launch_keeps_the_params_file_input_transport(tmp_path: Path) -> None:
    """cameras.launch.py with a user's file (compressed input, other values): every value
    honoured, each camera subscribes its driver's compressed topic, odom remapped."""
    tools = Tools(pick_domain(), tmp_path)
    try:
        launch_cameras(tools, tmp_path)
    finally:
        tools.close()


def launch_cameras(tools: Tools, tmp_path: Path) -> None:
    user = {**yaml.safe_load((REPO / "config" / "cameras.yaml").read_text())["/**"][
        "ros__parameters"], "input_transport": "compressed", "threads": 1,
        "overlay_alpha": 0.2, "grid.merge": False, "batch_wait_ms": 3.0, "use_tf": False}
    params = write_params(tmp_path / "cams.yaml", user)
    proc, log = tools.launch("cameras.launch.py", f"params_file:={params}", "odom:=/robot/odom")
    try:
        wait_for(lambda: (proc.poll() is None and "segmenting" in log.read_text())
                 or proc.poll() is not None, 120, "the cameras node, started")
        assert proc.poll() is None, log.read_text()[-3000:]
        # (ros2 param dump prints no parameters for a node with an unset one, here
        # camera_pose: read them over the node's parameter service instead)
        assert_honoured(user, node_parameters(tools.domain, NODE, list(user)))
        def node_info() -> str | None:
            out = tools.run("node", "info", NODE)
            return out if "Subscribers:" in out else None  # once the daemon discovered it
        info = wait_for(node_info, 60, "ros2 node info")
        for cam in ("front", "left", "rear"):
            assert f"/{cam}_camera/image_raw/compressed" in info, info
        assert "/robot/odom" in info, info
    finally:
        tools.stop_launch(proc, log)
