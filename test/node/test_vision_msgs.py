"""vision_msgs as `make ros-tools` builds it into the venv from the real package's source: a
child process imports it from the venv, sends a LabelInfo over real DDS and gets it back, and
the types carry the real vision_msgs hashes, so they interoperate with a robot's on the wire."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from seg_ros.live.domains import pick_domain
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# RIHS01 hashes of the real vision_msgs 4.1.1 definitions (ros2 branch), computed with this
# venv's rosidl_generator_type_description: the wire identity DDS peers compare.
REAL_HASHES = {
    "vision_msgs/msg/VisionClass":
        "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
}

# Publishes one LabelInfo transient-local, then subscribes late, so delivery proves both the
# type support and the durability; reports what arrived and the hashes as JSON on stdout.
CHILD = r"""
import json, time
from pathlib import Path
import rclpy
from ament_index_python.packages import get_package_share_directory
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
import vision_msgs
from vision_msgs.msg import LabelInfo, VisionClass

qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                 reliability=ReliabilityPolicy.RELIABLE)
rclpy.init()
node = rclpy.create_node("vision_msgs_check")
pub = node.create_publisher(LabelInfo, "label_info", qos)
msg = LabelInfo(class_map=[VisionClass(class_id=1, class_name="road"),
                           VisionClass(class_id=65535, class_name="unlabeled")], threshold=0.5)
msg.header.frame_id = "camera"
pub.publish(msg)
got = []
node.create_subscription(LabelInfo, "label_info", got.append, qos)
deadline = time.monotonic() + 20
while not got and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
share = Path(get_package_share_directory("vision_msgs"))
hashes = {}
for name in ("VisionClass", "LabelInfo"):
    doc = json.loads((share / "msg" / f"{name}.json").read_text())
    hashes.update({h["type_name"]: h["hash_string"] for h in doc["type_hashes"]})
wire = [str(i.topic_type_hash) for i in node.get_publishers_info_by_topic("/label_info")]
print(json.dumps({
    "module": vision_msgs.__file__,
    "received": [{"frame_id": m.header.frame_id, "threshold": m.threshold,
                  "class_map": [[c.class_id, c.class_name] for c in m.class_map]} for m in got],
    "hashes": hashes, "wire_hashes": wire,
}))
node.destroy_node()
rclpy.shutdown()
"""


@pytest.fixture(scope="module")
def child_report() -> dict:
    """Run CHILD on its own domain with the venv's environment; its JSON report."""
    env = local_env(pick_domain(), base=dict(os.environ))
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_label_info_round_trip(child_report: dict) -> None:
    """A transient-local LabelInfo reaches a late subscriber whole, from the venv's package."""
    assert child_report["module"].startswith(sys.prefix), child_report["module"]
    assert child_report["received"] == [{
        "frame_id": "camera", "threshold": 0.5,
        "class_map": [[1, "road"], [65535, "unlabeled"]]}]


def test_type_hashes_match_real_vision_msgs(child_report: dict) -> None:
    """Same RIHS01 hashes as the real package, both in the installed type descriptions and
    in what the publisher announces on the graph."""
    hashes = child_report["hashes"]
    assert {name: hashes.get(name) for name in REAL_HASHES} == REAL_HASHES
    assert child_report["wire_hashes"] == [REAL_HASHES["vision_msgs/msg/LabelInfo"]]


# A ROS install without vision_msgs (rosdep skipped it, or a source build without it): the
# import is blocked in the node's interpreter the way Python reports a missing package.
WITHOUT_VISION_MSGS = ("-c", "import sys; sys.modules['vision_msgs'] = None; "
                       "from seg_ros.cli import main; sys.exit(main(sys.argv[1:]))", "node")


def test_without_vision_msgs_the_node_says_once_why(tiny_model) -> None:
    """The node still segments; at start one WARN says ~/label_info/vision is off, why, and
    the fix; the topic is not offered."""
    from seg_ros.live import NodeProcess, param_args, wait_for

    domain = pick_domain()
    node = NodeProcess(param_args({"model_path": tiny_model, "threads": 1}), domain,
                       name="no_vision_node", module=WITHOUT_VISION_MSGS)
    try:
        wait_for(lambda: "segmenting" in node.log() or not node.alive(), 90, "the node")
        assert node.alive(), node.tail()
        topics = subprocess.run(
            [sys.executable, "-c", "import rclpy, time; rclpy.init(); "
             "n = rclpy.create_node('probe'); end = time.monotonic() + 30\n"
             "while time.monotonic() < end and '/no_vision_node/label_info' not in "
             "dict(n.get_topic_names_and_types()): time.sleep(0.2)\n"
             "time.sleep(2); print([t for t, _ in n.get_topic_names_and_types()])"],
            env=local_env(domain), capture_output=True, text=True, timeout=60).stdout
    finally:
        assert node.stop() == 0, node.tail()
    lines = [line for line in node.log().splitlines() if "label_info/vision" in line]
    assert len(lines) == 1 and "[WARN]" in lines[0], lines
    assert "vision_msgs is not importable" in lines[0] and "vision-msgs" in lines[0], lines[0]
    assert "/no_vision_node/label_info" in topics, topics
    assert "/no_vision_node/label_info/vision" not in topics, topics
