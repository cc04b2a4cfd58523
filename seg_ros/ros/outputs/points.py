"""~/points: the organised semantic cloud of the single camera (sensor_msgs/PointCloud2:
the depth image's height x width, fields x y z label confidence [rgb], not dense, little
endian) in the camera optical frame with the colour frame's header; computed only while
somebody subscribes. Needs the depth input's frame matched to the colour frame
(seg_ros.ros.depth_hook) and the confidence."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from seg_ros.depth import CloudBuffer
from seg_ros.ros.convert import byte_array
from seg_ros.ros.outputs.base import FrameResult, OutputBase
from seg_ros.ros.outputs.images import QOS

TOPIC = "~/points"


class Points(OutputBase):
    name = "points"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.pub = host.create_publisher(PointCloud2, TOPIC, QOS)
        self.depth = host.depth
        self.depth.points_wanted = self.subscribed  # unmatched colour frames count then
        self._clouds = threading.local()  # one buffer per worker thread
        self.published = 0

    def subscribed(self) -> bool:
        return bool(self.pub.get_subscription_count() > 0)

    def wanted(self, cam: Any, live: Any) -> bool:
        return cam.name == "" and self.subscribed()  # the depth input is the single camera's

    def needs_confidence(self, cam: Any, live: Any) -> bool:
        return True

    def publish(self, frame: FrameResult) -> None:
        with frame.timer("publish"), frame.camera.order.turn("points", frame.seq):
            self._cloud(frame.labels, frame.header, frame.confidence, frame.rgb)

    def _cloud(self, labels: np.ndarray, header: Header, confidence: np.ndarray | None,
               rgb: np.ndarray) -> None:
        """Publish the cloud of this colour frame when its depth twin is here."""
        depth = self.depth.frame_for(header, labels.shape[:2])
        if depth is None:
            return
        with_rgb = self.depth.config().rgb
        h, w = depth.metres.shape
        wide = labels.dtype == np.uint16
        cloud = getattr(self._clouds, "buffer", None)
        if cloud is None or not cloud.fits(h, w, wide, with_rgb):
            cloud = self._clouds.buffer = CloudBuffer(h, w, wide, with_rgb)
        cloud.fill(depth.metres, depth.rays, labels, confidence, rgb if with_rgb else None,
                   depth.pixel_map)
        self.pub.publish(cloud_msg(cloud, header))
        self.published += 1
        self.host.watchdog.published("points")

    def expected(self, live: Any) -> list[str]:
        return ["points"] if self.subscribed() else []

    def stall_reason(self, output: str) -> str:
        return self.depth.stall_reason() if output == "points" else ""

    def diagnostics_values(self) -> dict[str, str]:
        return {"points_published": str(self.published)}


def cloud_msg(cloud: CloudBuffer, header: Header) -> Any:
    """PointCloud2 of the filled buffer: organised (height x width of the depth image), not
    dense (NaN x y z where the depth had no return), little endian, with ``header`` (the
    colour frame's: its stamp, and its optical frame_id, which the registered depth shares)."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = cloud.height, cloud.width
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=1)
                  for name, offset, datatype in cloud.fields]
    msg.is_bigendian = False
    msg.point_step = cloud.point_step
    msg.row_step = cloud.row_step
    msg.data = byte_array(cloud.data.data.cast("B"))  # the array's own buffer, no copy
    msg.is_dense = False
    return msg
