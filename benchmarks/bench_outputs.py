"""Remote viewing: bytes per frame and the worker's cost to publish the overlay raw (rgb8
Image) against JPEG (CompressedImage), and the labels raw against PNG, at 640x480.

The overlay is a CamVid frame blended with the shipped model's labels (smooth noise when
CamVid is not there): JPEG sizes depend on content. Publish time is measured on a real rclpy
publisher with a subscriber in this process (so DDS really serialises and delivers), from the
array to the returned publish() call: message building, encoding and publishing.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from seg_ros.live import camvid_frames, pick_domain
from seg_ros.ros.dds import local_env
from seg_ros.timing import median_ms

W, H = 640, 480


def _overlay_and_labels() -> tuple[np.ndarray, np.ndarray]:
    from seg_ros.engines import open_engine
    from seg_ros.render import Palette
    from seg_ros.ros.params import default_model_path
    from seg_ros.segmenter import Segmenter

    rgb = camvid_frames(1, (W, H))[0]
    seg = Segmenter(open_engine(default_model_path(), "onnxruntime"))
    labels = seg(rgb, want_confidence=False).labels
    return Palette.from_card(seg.card).overlay(rgb, labels, 0.5), labels


def _publishers() -> tuple[Any, Any, Any, Any]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    os.environ.update(local_env(pick_domain()))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_outputs", context=ctx)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    raw, jpeg = (node.create_publisher(t, f"/bench/{n}", qos)
                 for t, n in ((Image, "raw"), (CompressedImage, "compressed")))
    for t, n in ((Image, "raw"), (CompressedImage, "compressed")):
        node.create_subscription(t, f"/bench/{n}", lambda _m: None, qos, raw=True)
    deadline = time.monotonic() + 10
    while (raw.get_subscription_count() == 0 or jpeg.get_subscription_count() == 0) and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    return ctx, node, raw, jpeg


def run() -> dict[str, float]:
    import rclpy
    from std_msgs.msg import Header

    from seg_ros.ros.outputs import images

    overlay, labels = _overlay_and_labels()
    ctx, node, raw_pub, jpeg_pub = _publishers()
    header = Header(frame_id="camera")
    raw = images.image(overlay, "rgb8", header)
    jpeg = images.compressed(overlay, "jpeg", 80, header)
    png = images.compressed(labels, "png", 100, header)
    out = {
        "overlay_raw_bytes_640x480": float(len(raw.data)),
        "overlay_jpeg80_bytes_640x480": float(len(jpeg.data)),
        "labels_raw_bytes_640x480": float(labels.size),
        "labels_png_bytes_640x480": float(len(png.data)),
        "overlay_raw_publish_ms_640x480": median_ms(
            lambda: raw_pub.publish(images.image(overlay, "rgb8", header))),
        "overlay_jpeg80_publish_ms_640x480": median_ms(
            lambda: jpeg_pub.publish(images.compressed(overlay, "jpeg", 80, header))),
        "labels_png_encode_ms_640x480": median_ms(
            lambda: images.compressed(labels, "png", 100, header)),
    }
    out["overlay_jpeg_bytes_ratio"] = out["overlay_raw_bytes_640x480"] / out[
        "overlay_jpeg80_bytes_640x480"]
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    return out
