"""Floor grid cost: per-frame label -> OccupancyGrid update, and the one-off LUT build.

A 640x480 pinhole+plumb_bob camera 1 m up, pitched 0.45 rad down, over a 200x200-cell grid at
0.05 m (10 x 10 m ahead of the robot); labels are random class ids (cost is content-free).
"""

from __future__ import annotations

import numpy as np

from benchmarks.timing import median_ms
from seg_ros.floor import CameraModel, CameraPose, GridSpec, GroundProjector, build_lut

K = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
D = (-0.28, 0.09, 0.001, -0.0015, -0.012)


def run() -> dict[str, float]:
    camera = CameraModel(640, 480, K, D, "plumb_bob")
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, 0.0, 0.45, 0.0)
    spec = GridSpec(0.05, 10.0, 10.0, 0.0, -5.0, max_range_m=10.0)
    labels = np.random.default_rng(0).integers(0, 12, (480, 640), dtype=np.uint8)
    proj = GroundProjector(spec, camera, pose)
    proj.update(labels, (3, 4))
    return {
        "grid_update_ms_200x200": median_ms(lambda: proj.update(labels, (3, 4)), repeats=300),
        "grid_lut_build_ms_200x200": median_ms(lambda: build_lut(camera, pose, spec), repeats=20,
                                               warmup=2),
        "grid_visible_cells_200x200": float(proj.lut.cells.size),
    }
