"""Depth (RGB-D) geometry, ROS-free (NumPy + OpenCV, no rclpy, no torch).

>>> depth_m = depth_to_metres("16UC1", h, w, step, data)         # REP 118, NaN = no return
>>> rays = RayTable.for_camera(CameraModel.from_camera_info(info))  # cached per camera
>>> cloud = CloudBuffer(h, w, rgb=False).fill(depth_m, rays, labels, confidence)
>>> grid = DepthGridMarker(spec, pose, rays, settings).update(depth_m, labels, traversable)
"""

from seg_ros.depth.cloud import CloudBuffer, cloud_fields
from seg_ros.depth.image import DEPTH_ENCODINGS, depth_to_metres
from seg_ros.depth.marking import DepthGridMarker, MarkingSettings, fill_from_flat
from seg_ros.depth.rays import RayTable, colour_pixel_map

__all__ = [
    "DEPTH_ENCODINGS",
    "CloudBuffer",
    "DepthGridMarker",
    "MarkingSettings",
    "RayTable",
    "cloud_fields",
    "colour_pixel_map",
    "depth_to_metres",
    "fill_from_flat",
]
