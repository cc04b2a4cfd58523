"""Floor cost: per-frame label -> OccupancyGrid update (contact and projected obstacles), the
one-off lookup-table build, and one frame fused into the map.

A 640x480 pinhole+plumb_bob camera 1 m up, pitched 0.45 rad down, over a 200x200-cell grid at
0.05 m (10 x 10 m ahead of the robot); labels are a floor with a few obstacles standing on it
and 1 % scattered obstacle pixels (segmentation noise), so the contact pass has real work. The
map is 200x200 cells at 0.05 m, rolling, with decay; the robot turned 0.3 rad in it.
"""

from __future__ import annotations

import numpy as np

from seg_ros.floor import (
    CameraModel,
    CameraPose,
    FloorMap,
    GridSpec,
    GroundProjector,
    MapSpec,
    Pose2D,
    build_lut,
)
from seg_ros.timing import median_ms

K = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
D = (-0.28, 0.09, 0.001, -0.0015, -0.012)
FLOOR, OBSTACLE = 3, 1


def scene_labels() -> np.ndarray:
    """Floor below the horizon, obstacle blocks standing on it, 1 % noise."""
    labels = np.full((480, 640), FLOOR, np.uint8)
    labels[:120] = 0  # sky / buildings: above the floor's horizon anyway
    for u0, v0 in ((80, 200), (300, 170), (500, 230)):
        labels[v0 - 60:v0, u0:u0 + 70] = OBSTACLE
    rng = np.random.default_rng(0)
    labels.reshape(-1)[rng.random(labels.size) < 0.01] = OBSTACLE
    return labels


def run() -> dict[str, float]:
    camera = CameraModel(640, 480, K, D, "plumb_bob")
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, 0.0, 0.45, 0.0)
    spec = GridSpec(0.05, 10.0, 10.0, 0.0, -5.0, max_range_m=10.0)
    labels = scene_labels()
    contact = GroundProjector(spec, camera, pose)
    projected = GroundProjector(spec, camera, pose, "projected")
    projected.use_lut(contact.lut)
    grid = contact.update(labels, (FLOOR,)).copy()
    fused = FloorMap(MapSpec(0.05, 10.0, 10.0, half_life_s=30.0))
    step = iter(range(10**9))

    def fuse() -> None:
        fused.fuse(grid, spec, Pose2D(1.0, 0.5, 0.3), 0.1 * next(step))

    return {
        "grid_update_ms_200x200": median_ms(lambda: contact.update(labels, (FLOOR,)),
                                            repeats=300),
        "grid_update_projected_ms_200x200": median_ms(
            lambda: projected.update(labels, (FLOOR,)), repeats=300),
        "grid_lut_build_ms_200x200": median_ms(lambda: build_lut(camera, pose, spec), repeats=20,
                                               warmup=2),
        "grid_visible_cells_200x200": float(contact.lut.cells.size),
        "map_fuse_ms_200x200": median_ms(fuse, repeats=300),
        "map_occupancy_ms_200x200": median_ms(fused.occupancy, repeats=100),
    }
