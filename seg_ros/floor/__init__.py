"""Traversable-floor grid from a label image, ROS-free (NumPy + OpenCV, no rclpy, no torch).

>>> cam = CameraModel.from_camera_info(camera_info_msg)          # or .from_yaml(path)
>>> pose = CameraPose.from_matrix(T_grid_optical)                 # or .from_xyz_rpy(...)
>>> proj = GroundProjector(GridSpec(resolution=0.05, width_m=10, height_m=10,
...                                 origin_x=0.0, origin_y=-5.0), cam, pose)
>>> grid = proj.update(labels, card.traversable)   # int8 (rows, cols): 0 / 100 / -1
>>> fused = FloorMap(MapSpec(...)); fused.fuse(grid, proj.spec, Pose2D(x, y, yaw), stamp_s)  # odom
"""

from seg_ros.floor.camera import CameraModel, CameraPose, Roi
from seg_ros.floor.grid import (
    FREE,
    MAX_CELLS,
    OBSTACLE_MODES,
    OCCUPIED,
    UNKNOWN,
    GridSpec,
    GroundLut,
    GroundProjector,
    build_lut,
)
from seg_ros.floor.map import FloorMap, MapSpec, Pose2D, PoseBuffer, local_grid_spec

__all__ = [
    "FREE",
    "MAX_CELLS",
    "OBSTACLE_MODES",
    "OCCUPIED",
    "UNKNOWN",
    "CameraModel",
    "CameraPose",
    "FloorMap",
    "GridSpec",
    "GroundLut",
    "GroundProjector",
    "MapSpec",
    "Pose2D",
    "PoseBuffer",
    "Roi",
    "build_lut",
    "local_grid_spec",
]
