"""A camera process for live tests: rgb8 frames of a given size on a topic at a steady rate,
each stamped with its capture time on a fixed cadence (as a driver with hardware stamps does),
in whatever DDS environment the process is started with (the point of running it apart).

    python test/cases/camera.py TOPIC WIDTHxHEIGHT HZ SECONDS [--best-effort]

Prints ``matched`` once a subscriber is matched (publishing starts then) and ``published N``
at the end. The ROS domain comes from ROS_DOMAIN_ID.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="camera.py")
    ap.add_argument("topic")
    ap.add_argument("size", help="WIDTHxHEIGHT")
    ap.add_argument("hz", type=float)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--best-effort", action="store_true")
    ap.add_argument("--wait", type=float, default=60.0, help="s to wait for a subscriber")
    a = ap.parse_args(argv)
    width, height = (int(v) for v in a.size.lower().split("x"))

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("test_camera", start_parameter_services=False)
    rel = ReliabilityPolicy.BEST_EFFORT if a.best_effort else ReliabilityPolicy.RELIABLE
    pub = node.create_publisher(Image, a.topic, QoSProfile(depth=5, reliability=rel))
    msg = Image(height=height, width=width, encoding="rgb8", step=3 * width)
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    msg.data = rgb.tobytes()
    msg.header.frame_id = "camera_optical"
    deadline = time.monotonic() + a.wait
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("matched" if pub.get_subscription_count() else "no subscriber", flush=True)
    period_ns = round(1e9 / a.hz)
    t0, stamp0, k = time.monotonic(), time.time_ns(), 0
    while time.monotonic() - t0 < a.seconds:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp0 + k * period_ns, 10**9)
        pub.publish(msg)
        k += 1
        time.sleep(max(0.0, t0 + k / a.hz - time.monotonic()))
    print(f"published {k}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
