"""The shipped robot-shaped config (config/robot.yaml, poses from tf) against a live node: every
value is a parameter the node declares and takes, the floor pose source is tf, and no WARN
about the example pose; config/camvid.yaml's CamVid car pose draws that WARN, once, at start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seg_ros.live import LiveClient, NodeLauncher, wait_for
from seg_ros.live.domains import pick_domain

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_WARN = "example camera_pose"


def start(params_file: Path, tmp_path: Path, domain: int):
    node = NodeLauncher(domain, params_file).start(["-p", "threads:=1"], tmp_path / "node.log")
    wait_for(lambda: "segmenting" in node.log() or not node.alive(), 90, "the node")
    assert node.alive(), node.tail()
    return node


def test_robot_yaml_is_taken_whole_and_uses_tf(tmp_path: Path) -> None:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    from seg_ros.ros.floor_config import EXAMPLE_CAMERA_POSE

    values = yaml.safe_load((REPO / "config" / "robot.yaml").read_text())["/**"][
        "ros__parameters"]
    assert values["use_tf"] is True and "camera_pose" not in values
    camvid = yaml.safe_load((REPO / "config" / "camvid.yaml").read_text())["/**"][
        "ros__parameters"]
    assert tuple(camvid["camera_pose"]) == EXAMPLE_CAMERA_POSE  # the WARN knows the example
    domain = pick_domain()
    node = start(REPO / "config" / "robot.yaml", tmp_path, domain)
    try:
        with LiveClient(domain, "robot_config_probe") as client:
            res = client.call("/segmentation_node/get_parameters", GetParameters,
                              GetParameters.Request(names=list(values)), timeout=30.0)
            got = {n: parameter_value_to_python(v) for n, v in zip(values, res.values)}
            assert got == {**values, "threads": 1}
            assert client.diagnostics("/segmentation_node")[2]["floor_pose_source"] == "tf"
    finally:
        assert node.stop() == 0, node.tail()
    assert EXAMPLE_WARN not in node.log()


def test_camvid_example_pose_warns_once_at_start(tmp_path: Path) -> None:
    node = start(REPO / "config" / "camvid.yaml", tmp_path, pick_domain())
    try:
        wait_for(lambda: EXAMPLE_WARN in node.log(), 10, "the example pose WARN")
    finally:
        assert node.stop() == 0, node.tail()
    lines = [line for line in node.log().splitlines() if EXAMPLE_WARN in line]
    assert len(lines) == 1 and "[WARN]" in lines[0] and "config/robot.yaml" in lines[0], lines
