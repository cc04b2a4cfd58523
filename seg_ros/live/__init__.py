"""What ``seg-ros bag eval``, gpu-check, the benchmarks and the tests share to drive a live node.

A node process in a private ROS domain (:class:`NodeProcess`), a test-side rclpy client with a
spin thread, raw output counters keyed by header stamp and the node's diagnostics
(:class:`LiveClient`), the one domain picker and a tiny real ONNX model. The node itself never
imports this room; the hostile and fuzz cases that drive it live with the tests (test/cases/).
Importing it imports neither rclpy nor torch.
"""

from seg_ros.live.client import (
    OUTPUTS,
    Collector,
    LiveClient,
    RawCounter,
    ask,
    in_domain,
    param_args,
    stamp_now,
    stamp_of,
    stream,
)
from seg_ros.live.domains import pick_domain
from seg_ros.live.models import camvid_frames, make_tiny_model, shipped_or_tiny_model
from seg_ros.live.process import NodeLauncher, NodeProcess, node_module, rss_mb
from seg_ros.live.wait import wait_for

__all__ = ["OUTPUTS", "Collector", "LiveClient", "NodeLauncher", "NodeProcess", "RawCounter",
           "ask", "camvid_frames", "in_domain", "make_tiny_model", "node_module", "param_args",
           "pick_domain", "rss_mb", "shipped_or_tiny_model", "stamp_now", "stamp_of", "stream",
           "wait_for"]
