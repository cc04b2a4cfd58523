"""~/camera_info: the input camera_info scaled to ``output_size``, with the frame's header. It
rides along with the frames computed for the other outputs (never a frame of its own)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo

from seg_ros.errors import CodecError
from seg_ros.intrinsics import received_intrinsics, scaled_intrinsics
from seg_ros.ros.outputs.base import FrameResult, OutputBase
from seg_ros.ros.outputs.images import QOS


class CameraInfoOutput(OutputBase):
    name = "camera_info"
    alone = False

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.pubs = {cam.name: host.create_publisher(CameraInfo, f"~/{cam.prefix}camera_info",
                                                     QOS) for cam in host.camera_list}

    def wanted(self, cam: Any, live: Any) -> bool:
        return bool(self.pubs[cam.name].get_subscription_count() > 0)

    def publish(self, frame: FrameResult) -> None:
        info, pub = frame.camera.camera_info, self.pubs[frame.camera.name]
        if info is None:
            return
        fx, fy = float(info.k[0]), float(info.k[4])
        if info.width == 0 or info.height == 0 or not (fx > 0 and fy > 0 and math.isfinite(
                fx + fy)):
            raise CodecError(f"camera_info unusable for {pub.topic_name}: "
                             f"{info.width}x{info.height}, fx {fx:g}, fy {fy:g}; publish the "
                             "camera's calibrated camera_info (non-zero size, focal lengths > 0)")
        src = received_intrinsics(info.width, info.height, info.k, info.p,
                                  (info.binning_x, info.binning_y),
                                  (info.roi.x_offset, info.roi.y_offset, info.roi.width,
                                   info.roi.height))
        out_h, out_w = frame.labels.shape[:2]
        dst = scaled_intrinsics(src, out_w, out_h)
        msg = CameraInfo(header=frame.header, width=dst.width, height=dst.height,
                         distortion_model=info.distortion_model)
        msg.d, msg.r = info.d, info.r
        msg.k, msg.p = np.array(dst.k), np.array(dst.p)
        pub.publish(msg)
