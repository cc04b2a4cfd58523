"""The node's image outputs: their publishers, which of them anybody wants, and one frame's
publication in arrival order (seg_ros.pipeline.OutputOrder) with only what is wanted computed.

Outputs (relative to the node, all with the input image's header):
    ~/labels, ~/confidence            mono8 (labels mono16 above 255 classes), step == width
    ~/color_mask, ~/overlay           rgb8
    ~/mask                            mono8, ``mask_value`` where the class is in mask_classes
    ~/labels/compressed               PNG (lossless: class ids survive)
    ~/color_mask/compressed, ~/overlay/compressed   JPEG, ``jpeg_quality``
    ~/camera_info                     the input camera_info scaled to ``output_size``
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from seg_ros import codec
from seg_ros.errors import CodecError
from seg_ros.intrinsics import parse_output_size, received_intrinsics, scaled_intrinsics
from seg_ros.masks import ClassMask, mark_unknown
from seg_ros.pipeline import OutputOrder, StageTimer, Stats
from seg_ros.render import Palette
from seg_ros.ros import convert, params

RAW = ("labels", "confidence", "color_mask", "overlay", "mask")
COMPRESSED = ("labels/compressed", "color_mask/compressed", "overlay/compressed")
IMAGE_OUTPUTS = (*RAW, *COMPRESSED)
SWITCH = {"labels": "publish_labels", "confidence": "publish_confidence",
          "color_mask": "publish_color_mask", "overlay": "publish_overlay"}


@dataclass
class FrameResult:
    """One frame's images at the output size, filled as they are computed."""

    rgb: np.ndarray            # the camera image at the output size
    labels: np.ndarray         # class ids at the output size
    confidence: np.ndarray | None
    header: Header
    seq: int
    color: np.ndarray | None = None


class OutputPublishers:
    """Publishers of every image output of one camera; ``wanted()`` says which have
    subscribers and are on.

    ``camera``: the camera's name in a node with several (outputs ~/<camera>/labels, ...; the
    watchdog hears of them as "<camera>/labels"), "" for the single camera (~/labels).
    """

    def __init__(self, node: Any, order: OutputOrder, stats: Stats,
                 on_published: Callable[[str], None], camera: str = "") -> None:
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.prefix = f"{camera}/" if camera else ""
        self.pubs = {n: node.create_publisher(CompressedImage if n in COMPRESSED else Image,
                                              f"~/{self.prefix}{n}", qos) for n in IMAGE_OUTPUTS}
        self.info_pub = node.create_publisher(CameraInfo, f"~/{self.prefix}camera_info", qos)
        self.order, self.stats, self.on_published = order, stats, on_published
        self._mask: ClassMask | None = None
        self._filter_src: tuple[str, ...] | None = None

    def wanted(self, live: params.LiveSettings) -> dict[str, bool]:
        """Output -> somebody subscribes and it is switched on (compressed follows raw)."""
        def on(name: str) -> bool:
            base = name.removesuffix("/compressed")
            return getattr(live, SWITCH[base]) if base in SWITCH else bool(live.mask_classes)
        return {n: on(n) and self.pubs[n].get_subscription_count() > 0 for n in IMAGE_OUTPUTS}

    def output_size(self, live: params.LiveSettings, input_hw: tuple[int, int],
                    model_hw: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the published images from the ``output_size`` parameter."""
        size = parse_output_size(live.output_size)
        if isinstance(size, str):
            return input_hw if size == "input" else model_hw
        return size[1], size[0]

    # --- one frame ---------------------------------------------------------------------------

    def publish_labels(self, want: dict[str, bool], frame: FrameResult, encoding: str,
                       live: params.LiveSettings, timer: StageTimer) -> None:
        """Labels (raw, PNG), with 255 where confidence is below ``unknown_below``."""
        if not (want["labels"] or want["labels/compressed"]):
            return
        labels = frame.labels
        if live.unknown_below > 0 and frame.confidence is not None and encoding == "mono8":
            with timer("postprocess"):
                labels = mark_unknown(labels, frame.confidence, live.unknown_below)
        if want["labels"]:
            self.send("labels", self.image(labels, encoding, frame.header), frame.seq, timer)
        if want["labels/compressed"]:
            with timer("render"):
                msg = self.compressed(labels, "png", 100, frame.header)
            self.send("labels/compressed", msg, frame.seq, timer)

    def publish_pictures(self, want: dict[str, bool], frame: FrameResult, card: Any,
                         palette: Palette, live: params.LiveSettings, timer: StageTimer) -> None:
        """Confidence, class mask, colour mask and overlay (raw and JPEG), each if wanted."""
        h, seq = frame.header, frame.seq
        if want["confidence"] and frame.confidence is not None:
            self.send("confidence", self.image(frame.confidence, "mono8", h), seq, timer)
        if want["mask"]:
            with timer("render"):
                mask = self._class_mask(live, card)(frame.labels)
            self.send("mask", self.image(mask, "mono8", h), seq, timer)
        if want["color_mask"] or want["color_mask/compressed"]:
            with timer("render"):
                frame.color = palette.color_mask(frame.labels)
            self._picture("color_mask", want, frame.color, frame, live, timer)
        if want["overlay"] or want["overlay/compressed"]:
            with timer("render"):
                self._sync_filter(live, palette, card)
                overlay = palette.overlay(frame.rgb, frame.labels, live.overlay_alpha,
                                          frame.color)
            self._picture("overlay", want, overlay, frame, live, timer)

    def publish_camera_info(self, info: Any, out_hw: tuple[int, int], header: Header) -> None:
        """The input camera_info scaled to the output size, with the frame's header."""
        if info is None or self.info_pub.get_subscription_count() == 0:
            return
        fx, fy = float(info.k[0]), float(info.k[4])
        if info.width == 0 or info.height == 0 or not (fx > 0 and fy > 0 and math.isfinite(
                fx + fy)):
            raise CodecError(f"camera_info unusable for {self.info_pub.topic_name}: "
                             f"{info.width}x{info.height}, fx {fx:g}, fy {fy:g}; publish the "
                             "camera's calibrated camera_info (non-zero size, focal lengths > 0)")
        src = received_intrinsics(info.width, info.height, info.k, info.p,
                                  (info.binning_x, info.binning_y),
                                  (info.roi.x_offset, info.roi.y_offset, info.roi.width,
                                   info.roi.height))
        dst = scaled_intrinsics(src, out_hw[1], out_hw[0])
        msg = CameraInfo(header=header, width=dst.width, height=dst.height,
                         distortion_model=info.distortion_model)
        msg.d, msg.r = info.d, info.r
        msg.k, msg.p = np.array(dst.k), np.array(dst.p)
        self.info_pub.publish(msg)

    # --- helpers -----------------------------------------------------------------------------

    def _picture(self, name: str, want: dict[str, bool], rgb: np.ndarray, frame: FrameResult,
                 live: params.LiveSettings, timer: StageTimer) -> None:
        if want[name]:
            self.send(name, self.image(rgb, "rgb8", frame.header), frame.seq, timer)
        if want[f"{name}/compressed"]:
            with timer("render"):
                msg = self.compressed(rgb, "jpeg", live.jpeg_quality, frame.header)
            self.send(f"{name}/compressed", msg, frame.seq, timer)

    def send(self, name: str, msg: Any, seq: int, timer: StageTimer) -> None:
        """Publish one output in arrival order (see OutputOrder; workers > 1)."""
        with timer("publish"), self.order.turn(name, seq):
            self.pubs[name].publish(msg)
        self.stats.computed[name] = self.stats.computed.get(name, 0) + 1
        self.on_published(self.prefix + name)

    @staticmethod
    def image(array: np.ndarray, encoding: str, header: Header) -> Image:
        return convert.to_image_msg(array, encoding, header)

    @staticmethod
    def compressed(array: np.ndarray, fmt: str, quality: int, header: Header) -> CompressedImage:
        form, data = codec.encode_compressed(array, fmt, quality)
        return CompressedImage(header=header, format=form, data=convert.byte_array(data))

    def _class_mask(self, live: params.LiveSettings, card: Any) -> ClassMask:
        ids = params.parse_class_filter(live.mask_classes, card.class_names)
        if self._mask is None or (self._mask.class_ids, self._mask.value) != (
                ids, live.mask_value):
            self._mask = ClassMask(ids, live.mask_value, card.num_classes)
        return self._mask

    def _sync_filter(self, live: params.LiveSettings, palette: Palette, card: Any) -> None:
        if live.class_filter != self._filter_src:  # validated when it was set
            self._filter_src = live.class_filter
            palette.set_visible(params.parse_class_filter(live.class_filter, card.class_names))


def resize_rgb(rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The camera image at the output size (area averaging down, linear up)."""
    if rgb.shape[:2] == out_hw:
        return rgb
    smaller = out_hw[0] * out_hw[1] < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (out_hw[1], out_hw[0]),
                      interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)
