"""Ground-contact marking against known truth: boxes of real height ray-traced over a floor
(test/floor_world.py), seen by a pinhole, a rolled plumb_bob and a fisheye camera."""

from __future__ import annotations

import numpy as np
import pytest
from floor_world import (
    FLOOR,
    RUG,
    TRAVERSABLE,
    Box,
    World,
    footprint,
    hidden_cells,
    near,
    render,
)

from seg_ros.errors import ConfigError
from seg_ros.floor import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    CameraModel,
    CameraPose,
    GridSpec,
    GroundProjector,
    build_lut,
)

K640 = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
PLUMB_BOB = (-0.28, 0.09, 0.001, -0.0015, -0.012)
FISHEYE_K = (260.0, 0.0, 320.0, 0.0, 262.0, 240.0, 0.0, 0.0, 1.0)
FISHEYE_D = (0.05, -0.01, 0.004, -0.001)
# A 1 m box 3 m ahead, a low box to the left, a tall post to the right, a rug on the floor.
WORLD = World(((FLOOR, -2.0, 12.0, -8.0, 8.0), (RUG, 1.5, 2.5, 0.5, 1.5)),
              (Box(3.0, 3.6, -0.8, 0.2, 1.0), Box(4.5, 5.0, 1.0, 1.8, 0.4),
               Box(2.0, 2.3, -2.5, -1.8, 2.0)))
SPEC = GridSpec(0.05, 8.0, 8.0, -1.0, -4.0, max_range_m=7.0)
CAMERAS = {
    "pinhole pitched": (CameraModel(640, 480, K640),
                        CameraPose.from_xyz_rpy(0.1, 0.0, 1.0, 0.0, 0.45, 0.0)),
    "plumb_bob rolled": (CameraModel(640, 480, K640, PLUMB_BOB),
                         CameraPose.from_xyz_rpy(-0.2, 0.3, 1.2, 0.2, 0.5, 0.15)),
    "fisheye": (CameraModel(640, 480, FISHEYE_K, FISHEYE_D, "equidistant"),
                CameraPose.from_xyz_rpy(0.0, 0.0, 0.8, -0.1, 0.6, -0.2)),
}


def grids(camera: CameraModel, pose: CameraPose) -> dict[str, np.ndarray]:
    labels = render(camera, pose, WORLD)
    lut = build_lut(camera, pose, SPEC)
    out = {}
    for mode in ("contact", "projected"):
        proj = GroundProjector(SPEC, obstacle_mode=mode)
        proj.use_lut(lut)
        out[mode] = proj.update(labels, TRAVERSABLE).copy()
    return out


@pytest.mark.parametrize("name", CAMERAS)
def test_contact_grid_matches_truth(name: str) -> None:
    camera, pose = CAMERAS[name]
    g = grids(camera, pose)
    grid, projected = g["contact"], g["projected"]
    fp = footprint(SPEC, WORLD)
    hidden = hidden_cells(SPEC, WORLD, pose.matrix[:3, 3]) & ~near(fp, 2)
    free, occ = grid == FREE, grid == OCCUPIED
    assert free.sum() > 5000 and occ.sum() >= 20 and hidden.sum() > 2000
    assert (~fp[free]).mean() >= 0.995, "free cells must be truly free floor"
    assert near(fp, 2)[occ].mean() >= 0.95, "occupied cells must lie at an obstacle"
    # The floor a box hides (and its back) is unknown, never occupied.
    assert (grid[hidden] == UNKNOWN).mean() >= 0.99
    # Every box whose front the camera sees is marked where it stands.
    for box in WORLD.boxes:
        own = near(footprint(SPEC, World(((FLOOR, -9, 9, -9, 9),), (box,))), 2)
        if (projected[own] == OCCUPIED).any():
            assert (grid[own] == OCCUPIED).sum() >= 3, box
    # Floor seen in projected mode stays free in contact mode unless it lies in a shadow
    # (widened by about one cell at its sides).
    seen_free = (projected == FREE) & ~near(hidden_cells(SPEC, WORLD, pose.matrix[:3, 3]), 2)
    assert (grid[seen_free] == FREE).mean() >= 0.98


def test_projected_mode_smears_obstacles() -> None:
    """The same truth checks fail in projected mode: the check can tell them apart."""
    camera, pose = CAMERAS["pinhole pitched"]
    projected = grids(camera, pose)["projected"]
    fp = footprint(SPEC, WORLD)
    hidden = hidden_cells(SPEC, WORLD, pose.matrix[:3, 3]) & ~near(fp, 2)
    assert near(fp, 2)[projected == OCCUPIED].mean() < 0.5
    assert (projected[hidden] == OCCUPIED).mean() > 0.5


def test_nothing_to_hide_is_the_same_in_both_modes() -> None:
    camera, pose = CAMERAS["plumb_bob rolled"]
    labels = render(camera, pose, World(((FLOOR, -9.0, 9.0, -9.0, 9.0),)))
    a = GroundProjector(SPEC, camera, pose).update(labels, TRAVERSABLE).copy()
    b = GroundProjector(SPEC, camera, pose, "projected").update(labels, TRAVERSABLE)
    np.testing.assert_array_equal(a, b)
    assert (a == FREE).sum() > 5000


def test_low_confidence_obstacle_does_not_hide() -> None:
    """A pixel left unknown by grid.min_confidence is no contact: what lies behind stays."""
    camera, pose = CAMERAS["pinhole pitched"]
    labels = render(camera, pose, WORLD)
    proj = GroundProjector(SPEC, camera, pose)
    sure = proj.update(labels, TRAVERSABLE).copy()
    confidence = np.where(np.isin(labels, TRAVERSABLE), 255, 10).astype(np.uint8)
    unsure = proj.update(labels, TRAVERSABLE, confidence, min_confidence=128)
    assert (unsure == OCCUPIED).sum() == 0
    assert (unsure == FREE).sum() > (sure == FREE).sum()


def test_obstacle_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match="obstacle mode 'smear' is not one of contact, projected"):
        GroundProjector(SPEC, obstacle_mode="smear")
