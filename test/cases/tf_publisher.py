"""A robot's tf from a process of its own, with the real tf2_ros broadcasters, driven over stdin
(one JSON object per line; each is answered with one line on stdout, ``ok`` or ``error: ...``):

- ``{"static": [[parent, child, x, y, z, qx, qy, qz, qw], ...]}``: latched on /tf_static
  (the cameras' mounts, as robot_state_publisher sends them);
- ``{"tf": [[parent, child, t_s, x, y, yaw], ...]}``: on /tf, stamped ``t_s`` seconds (the
  odometry's ``odom -> base_link``, in the plane);
- ``{"wait_subscribers": n, "timeout": s}``: until /tf has ``n`` subscribers (dynamic tf sent
  before a listener joins is lost, as on a robot).

    python test/cases/tf_publisher.py    (in the ROS domain of the nodes under test)
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any


def transform(parent: str, child: str, t_s: float, xyz: tuple[float, float, float],
              q: tuple[float, float, float, float]) -> Any:
    """geometry_msgs/TransformStamped child in parent at ``t_s`` seconds."""
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(t_s * 1e9), 10**9)
    tr, r = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = (float(v) for v in xyz)
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


def handle(cmd: dict[str, Any], node: Any, static: Any, dynamic: Any) -> None:
    """Carry out one command (see the module docstring)."""
    if "static" in cmd:
        static.sendTransform([transform(p, c, 0.0, (x, y, z), (qx, qy, qz, qw))
                              for p, c, x, y, z, qx, qy, qz, qw in cmd["static"]])
    if "tf" in cmd:
        dynamic.sendTransform([
            transform(p, c, t, (x, y, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)))
            for p, c, t, x, y, yaw in cmd["tf"]])
    if "wait_subscribers" in cmd:
        deadline = time.monotonic() + float(cmd.get("timeout", 30.0))
        while node.count_subscribers("/tf") < int(cmd["wait_subscribers"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"/tf has {node.count_subscribers('/tf')} subscribers, "
                                   f"not {cmd['wait_subscribers']}")
            time.sleep(0.05)


def main() -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster

    rclpy.init()
    node = rclpy.create_node("seg_ros_test_tf_publisher")
    static, dynamic = StaticTransformBroadcaster(node), TransformBroadcaster(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                handle(json.loads(line), node, static, dynamic)
                print("ok", flush=True)
            except Exception as e:
                print(f"error: {type(e).__name__}: {e}", flush=True)
    finally:
        executor.shutdown()  # ends spin(): the thread is joined before the node goes
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
