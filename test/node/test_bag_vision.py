"""`seg-ros bag record` of the node's ~/label_info/vision (vision_msgs/LabelInfo, a type that is
neither Kilted's nor seg_ros's): its definition comes from the local ROS install (vision_msgs
built into the venv by `make ros-tools`), and the mcap reads back with rosbags' reader alone,
from the definitions the bag carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import vision_msgs.msg  # noqa: F401 - built into the venv by `make ros-tools`: never skipped

from seg_ros.live import NodeProcess, param_args, wait_for
from seg_ros.live.domains import pick_domain
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TOPIC = "/vision_bag_node/label_info/vision"


def test_register_installed_learns_label_info() -> None:
    """The typestore learns vision_msgs/msg/LabelInfo and VisionClass from the installed .msg
    files; a type no package installs stays unknown."""
    from seg_ros.bag import register_installed, typestore

    assert register_installed("vision_msgs/msg/LabelInfo")
    ts = typestore()
    assert {"vision_msgs/msg/LabelInfo", "vision_msgs/msg/VisionClass"} <= set(ts.types)
    assert not register_installed("no_such_pkg/msg/Thing")
    assert not register_installed("vision_msgs/msg/NoSuchType")


def test_bag_record_label_info_vision_reads_back(tiny_model: Path, tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    domain = pick_domain()
    node = NodeProcess(param_args({"model_path": tiny_model, "threads": 1,
                                   "unknown_below": 0.3}), domain, name="vision_bag_node")
    out = tmp_path / "vision_bag"
    try:
        wait_for(lambda: "segmenting" in node.log() or not node.alive(), 90, "the node")
        assert node.alive(), node.tail()
        rec = subprocess.run(
            [str(Path(sys.executable).with_name("seg-ros")), "bag", "record", TOPIC,
             "--out", str(out), "--duration", "6"],
            env=local_env(domain), capture_output=True, text=True, timeout=120)
    finally:
        assert node.stop() == 0, node.tail()
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "skipped" not in rec.stdout.lower(), rec.stdout
    # rosbags' own reader, with the types the bag's mcap schema carries (no seg_ros typestore)
    with AnyReader([out]) as reader:
        conns = [c for c in reader.connections if c.topic == TOPIC]
        assert [c.msgtype for c in conns] == ["vision_msgs/msg/LabelInfo"]
        msgs: list[Any] = [reader.deserialize(raw, c.msgtype)  # classes made from the schema
                           for c, _t, raw in reader.messages(connections=conns)]
    assert len(msgs) == 1
    names = [(c.class_id, c.class_name) for c in msgs[0].class_map]
    assert names[:2] == [(0, "Sky"), (1, "Building")] and len(names) == 11
    assert msgs[0].threshold == pytest.approx(0.3)
