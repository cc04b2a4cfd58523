"""The node a user would write instead of seg_ros: the baseline of bench_vs_reference.

A straightforward rclpy node, the way ROS 2 + ONNX tutorials do it: the subscription callback
(default QoS depth 10, reliable) converts ``msg.data`` with ``np.array(...).reshape``, runs the
same ONNX model synchronously (same pre-processing math: resize to the model size, x / 255,
(x - mean) / std, NCHW; same intra-op thread count), colours with ``palette[labels]``, blends the
overlay in float, and publishes labels, confidence, colour mask and overlay, filling
``msg.data`` with ``array.tobytes()`` (what most tutorials and pre-Humble cv_bridge's
``cv2_to_imgmsg`` do; rclpy then checks every byte in Python).

Run: ``python -m benchmarks.reference_node --ros-args -p model_path:=models/camvid.onnx
-p threads:=1 -r image:=/camera/image_raw`` (in the seg_ros.ros.dds.local_env environment).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnxruntime as ort
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from seg_ros.model_card import read_card  # the model's mean/std/colours (a user hard-codes them)


class ReferenceSegmentationNode(Node):
    def __init__(self) -> None:
        super().__init__("reference_segmentation")
        model_path: str = self.declare_parameter("model_path", "models/camvid.onnx").value
        threads: int = self.declare_parameter("threads", 1).value
        self.alpha: float = self.declare_parameter("overlay_alpha", 0.5).value
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        _, _, self.h, self.w = self.session.get_inputs()[0].shape
        card = read_card(model_path)
        self.mean = np.array(card.mean, np.float32)
        self.std = np.array(card.std, np.float32)
        self.palette = np.array(card.colors, np.uint8)
        self.sub = self.create_subscription(Image, "image", self.callback, 10)
        self.pub_labels = self.create_publisher(Image, "~/labels", 10)
        self.pub_conf = self.create_publisher(Image, "~/confidence", 10)
        self.pub_color = self.create_publisher(Image, "~/color_mask", 10)
        self.pub_overlay = self.create_publisher(Image, "~/overlay", 10)

    def callback(self, msg: Image) -> None:
        img = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)  # rgb8
        x = cv2.resize(img, (self.w, self.h)).astype(np.float32) / 255.0
        x = (x - self.mean) / self.std
        x = x.transpose(2, 0, 1)[None].astype(np.float32)
        labels, confidence = self.session.run(None, {self.input_name: x})
        labels = cv2.resize(labels[0].astype(np.uint8), (msg.width, msg.height),
                            interpolation=cv2.INTER_NEAREST)
        conf = cv2.resize((confidence[0] * 255).astype(np.uint8), (msg.width, msg.height))
        color = self.palette[labels]
        overlay = (img * (1 - self.alpha) + color * self.alpha).astype(np.uint8)
        self.publish(self.pub_labels, labels, "mono8", msg.header)
        self.publish(self.pub_conf, conf, "mono8", msg.header)
        self.publish(self.pub_color, color, "rgb8", msg.header)
        self.publish(self.pub_overlay, overlay, "rgb8", msg.header)

    @staticmethod
    def publish(pub, array: np.ndarray, encoding: str, header) -> None:
        out = Image()
        out.header = header
        out.height, out.width = array.shape[:2]
        out.encoding = encoding
        out.step = array.shape[1] * (3 if array.ndim == 3 else 1)
        out.data = array.tobytes()
        pub.publish(out)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = ReferenceSegmentationNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
