"""RGB-D cost: ~/points at 640x480 (16UC1 decode + organised cloud + PointCloud2 message) and
the depth-based floor grid update at 200x200 cells.

A 640x480 pinhole+plumb_bob camera 1 m up, pitched 0.45 rad down, looks at a floor with a
0.4 m box 2 m ahead (depth computed along the ray table); labels are random class ids (the cost
does not depend on content), traversable {3, 4}. The grid is 10 x 10 m at 0.05 m.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from seg_ros.depth import CloudBuffer, DepthGridMarker, MarkingSettings, RayTable, depth_to_metres
from seg_ros.floor import CameraModel, CameraPose, GridSpec
from seg_ros.timing import median_ms

K = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
D = (-0.28, 0.09, 0.001, -0.0015, -0.012)
W, H = 640, 480


def scene_depth_mm(rays: RayTable, pose: CameraPose) -> np.ndarray:
    """uint16 millimetres of the floor (z = 0) and a box face at x = 2 m up to 0.4 m; 0 beyond
    10 m, as a sensor's range ends."""
    t = pose.matrix
    d = np.stack([rays.x, rays.y, np.ones_like(rays.x)], axis=-1) @ t[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(d[..., 2] < 0, -t[2, 3] / d[..., 2], np.inf)
        wall = (2.0 - t[0, 3]) / d[..., 0]
    on_box = (wall > 0) & (t[2, 3] + d[..., 2] * wall <= 0.4)
    depth = np.where(on_box & (wall < floor), wall, floor)
    return np.where(depth <= 10.0, np.round(depth * 1000), 0).astype(np.uint16)


def run() -> dict[str, float]:
    from std_msgs.msg import Header

    from seg_ros.ros.outputs.points import cloud_msg

    camera = CameraModel(W, H, K, D, "plumb_bob")
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, 0.0, 0.45, 0.0)
    rays = RayTable.for_camera(camera)
    data = scene_depth_mm(rays, pose).tobytes()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, (H, W), dtype=np.uint8)
    confidence = rng.integers(0, 256, (H, W), dtype=np.uint8)
    cloud = CloudBuffer(H, W)
    header = Header(frame_id="camera_color_optical_frame")

    def points() -> object:
        cloud.fill(depth_to_metres("16UC1", H, W, 2 * W, data), rays, labels, confidence)
        return cloud_msg(cloud, header)

    metres = depth_to_metres("16UC1", H, W, 2 * W, data)
    spec = GridSpec(0.05, 10.0, 10.0, 0.0, -5.0, max_range_m=10.0)
    traversable = np.zeros(256, bool)
    traversable[[3, 4]] = True
    out = {
        "points_build_ms_640x480": median_ms(points, repeats=100),
        "points_decode_ms_640x480": median_ms(
            lambda: depth_to_metres("16UC1", H, W, 2 * W, data), repeats=100),
        "depth_ray_table_build_ms_640x480": median_ms(
            lambda: _fresh_rays(camera),
            repeats=3, warmup=0),
    }
    for stride in (1, 2, 4):
        marker = DepthGridMarker(spec, pose, rays, MarkingSettings(stride=stride))
        key = "depth_grid_update_ms_200x200" + ("" if stride == 2 else f"_stride{stride}")
        out[key] = median_ms(partial(marker.update, metres, labels, traversable), repeats=200)
    return out


def _fresh_rays(camera: CameraModel) -> RayTable:
    """A table built from scratch (the cache bypassed): the one-off cost per camera_info."""
    from seg_ros.depth.rays import _build

    return _build.__wrapped__(camera)
