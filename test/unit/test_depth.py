"""Depth decode, ray tables, the organised semantic cloud and depth-based grid marking against
the known truth of a ray-traced RGB-D world (test/unit/rgbd_world.py). ROS-free."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rgbd_world import (
    BOX,
    FLOOR,
    RAMP,
    TABLE,
    TRAVERSABLE,
    World,
    occupancy_truth,
    pinhole_rays,
    render,
    to_millimetres,
)

from seg_ros.depth import (
    CloudBuffer,
    DepthGridMarker,
    MarkingSettings,
    RayTable,
    colour_pixel_map,
    depth_to_metres,
    fill_from_flat,
)
from seg_ros.errors import CodecError, ConfigError
from seg_ros.floor import UNKNOWN, CameraModel, CameraPose, GridSpec, GroundProjector, Roi

W, H, F = 640, 480, 500.0
STRIDE = 1  # every pixel: the rules themselves, without sampling gaps (see the stride test)
POSE = CameraPose.from_xyz_rpy(0.0, 0.0, 1.2, 0.0, 0.45, 0.0)  # 1.2 m up, 0.45 rad down
SPEC = GridSpec(resolution=0.05, width_m=6.0, height_m=6.0, origin_x=0.0, origin_y=-3.0,
                max_range_m=8.0)


def pinhole(width: int = W, height: int = H, f: float = F, **kw: Any) -> CameraModel:
    return CameraModel(width, height, (f, 0, (width - 1) / 2, 0, f, (height - 1) / 2, 0, 0, 1),
                       **kw)


@pytest.fixture(scope="module")
def scene() -> dict[str, np.ndarray]:
    """The world seen by a 640x480 pinhole (rays computed independently of seg_ros)."""
    rx, ry = pinhole_rays(W, H, F)
    depth, labels, which = render(World(), rx, ry, POSE.matrix)
    return {"depth": depth, "labels": labels, "which": which}


def traversable_table() -> np.ndarray:
    table = np.zeros(256, bool)
    table[list(TRAVERSABLE)] = True
    return table


# ------------------------------------------------------------------------------ decode


def test_16uc1_is_millimetres_and_zero_is_no_return() -> None:
    mm = np.array([[0, 1, 1500], [65535, 10, 0]], "<u2")
    m = depth_to_metres("16UC1", 2, 3, 6, mm.tobytes())
    assert m.dtype == np.float32
    assert np.isnan(m[0, 0]) and np.isnan(m[1, 2])
    np.testing.assert_allclose(m[0, 1:], [0.001, 1.5], rtol=1e-6)
    np.testing.assert_allclose(m[1, :2], [65.535, 0.01], rtol=1e-6)


def test_32fc1_no_return_values_become_nan_and_padding_and_byte_order_are_honoured() -> None:
    values = np.array([[0.0, np.nan, 2.5], [np.inf, -1.0, 0.25]], np.float32)
    padded = np.zeros((2, 16), np.uint8)  # step 16 > 3 * 4 bytes
    padded[:, :12] = values.astype(">f4").view(np.uint8).reshape(2, 12)
    m = depth_to_metres("32FC1", 2, 3, 16, padded.tobytes(), is_bigendian=True)
    assert np.isnan(m[0, :2]).all() and np.isnan(m[1, :2]).all()
    np.testing.assert_array_equal(m[:, 2], [2.5, 0.25])


@pytest.mark.parametrize(("args", "words"), [
    (("rgb8", 2, 2, 6, bytes(12)), "16UC1"),
    (("16UC1", 2, 2, 4, bytes(7)), "truncated"),
    (("16UC1", 2, 2, 3, bytes(8)), "step"),
    (("32FC1", 0, 2, 8, b""), "empty"),
])
def test_bad_depth_messages_get_one_line_naming_the_fix(args: tuple, words: str) -> None:
    with pytest.raises(CodecError, match=words):
        depth_to_metres(*args)


# ------------------------------------------------------------------------------ rays


def test_pinhole_rays_equal_the_independent_ones() -> None:
    rays = RayTable.for_camera(pinhole())
    rx, ry = pinhole_rays(W, H, F)
    assert np.abs(rays.x - rx).max() < 1e-6 and np.abs(rays.y - ry).max() < 1e-6
    assert RayTable.for_camera(pinhole()) is rays  # cached per camera


@pytest.mark.parametrize(("model", "d"), [
    ("plumb_bob", (-0.28, 0.07, 0.001, -0.0005, 0.0)),
    ("rational_polynomial", (2.1, 0.9, 0.0005, 0.0, 0.02, 2.4, 1.6, 0.12)),
    ("equidistant", (0.05, -0.01, 0.002, -0.0005)),
])
def test_rays_project_back_onto_their_pixels(model: str, d: tuple) -> None:
    """Undistortion checked against OpenCV's forward model (projectPoints)."""
    cam = CameraModel(320, 240, (260, 0, 161.5, 0, 258, 118.2, 0, 0, 1), d, model)
    rays = RayTable.for_camera(cam)
    ok = np.isfinite(rays.x)
    assert ok.mean() > 0.99
    pts = np.stack([rays.x[ok], rays.y[ok], np.ones(ok.sum())], axis=1)
    uv = cam.project(pts)
    v, u = np.nonzero(ok)
    assert np.abs(uv[:, 0] - u).max() < 1e-3 and np.abs(uv[:, 1] - v).max() < 1e-3


def test_rays_of_a_binned_roi_land_on_the_received_pixels() -> None:
    cam = pinhole(1280, 960, 1000.0, binning_x=2, binning_y=2, roi=Roi(64, 32, 1024, 768))
    rays = RayTable.for_camera(cam)
    assert rays.shape == (384, 512)
    pts = np.stack([rays.x.ravel(), rays.y.ravel(), np.ones(rays.x.size)], axis=1)
    v, u = np.mgrid[0:384, 0:512]
    uv = cam.project(pts)
    assert np.abs(uv - np.stack([u.ravel(), v.ravel()], 1)).max() < 1e-4  # float32 rays


# ------------------------------------------------------------------------------ cloud


def surface_error(points_optical: np.ndarray, which: np.ndarray, world: World) -> np.ndarray:
    """Distance of each point (optical frame) from the surface its pixel's ray truly hit."""
    t = POSE.matrix
    p = points_optical.reshape(-1, 3).astype(np.float64) @ t[:3, :3].T + t[:3, 3]
    w = which.ravel()
    err = np.full(w.size, np.nan)
    err[w == -1] = p[w == -1, 2]  # the floor plane z = 0
    for k, solid in enumerate(world.solids):
        err[w == k] = solid.signed_distance(p[w == k])
    return np.abs(err)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_cloud_points_lie_on_the_true_surfaces_and_carry_the_labels(
        scene: dict[str, np.ndarray], encoding: str) -> None:
    depth = scene["depth"]
    if encoding == "16UC1":
        data, quantum = to_millimetres(depth).tobytes(), 0.0005  # half a millimetre
    else:
        data, quantum = depth.astype(np.float32).tobytes(), 0.0
    step = W * (2 if encoding == "16UC1" else 4)
    metres = depth_to_metres(encoding, H, W, step, data)
    rays = RayTable.for_camera(pinhole())
    confidence = np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    cloud = CloudBuffer(H, W, rgb=True).fill(metres, rays, scene["labels"], confidence, rgb)
    assert cloud.shape == (H, W, 20)
    xyz = cloud[:, :, :12].copy().view(np.float32)
    valid = np.isfinite(depth)
    assert 0.02 < (~valid).mean() < 0.5  # the far floor and the horizon give no return
    assert np.isnan(xyz[~valid]).all() and np.isfinite(xyz[valid]).all()
    err = surface_error(xyz[valid], scene["which"][valid], World())
    ray_len = np.sqrt(1 + rays.x[valid] ** 2 + rays.y[valid] ** 2)
    assert (err < 0.001 + quantum * ray_len).all(), err.max()
    np.testing.assert_array_equal(cloud[:, :, 12], scene["labels"])
    np.testing.assert_array_equal(cloud[:, :, 14], confidence)
    packed = cloud[:, :, 16:20].copy().view("<u4")[:, :, 0]
    np.testing.assert_array_equal(packed >> 16, rgb[:, :, 0])
    np.testing.assert_array_equal((packed >> 8) & 255, rgb[:, :, 1])
    np.testing.assert_array_equal(packed & 255, rgb[:, :, 2])
    assert set(np.unique(scene["labels"])) >= {FLOOR, BOX, TABLE, RAMP}


def test_cloud_of_a_distorted_camera_lies_on_the_true_surfaces() -> None:
    """A wide-angle plumb_bob lens: the world is rendered along the table's rays, which the
    round-trip test above checks against OpenCV's forward projection."""
    cam = CameraModel(W, H, (420, 0, 322.0, 0, 421, 236.5, 0, 0, 1),
                      (-0.3, 0.09, 0.0008, -0.0004, -0.01))
    rays = RayTable.for_camera(cam)
    depth, labels, which = render(World(), rays.x.astype(np.float64),
                                  rays.y.astype(np.float64), POSE.matrix)
    metres = depth_to_metres("16UC1", H, W, 2 * W, to_millimetres(depth).tobytes())
    cloud = CloudBuffer(H, W).fill(metres, rays, labels, None)
    xyz = cloud[:, :, :12].copy().view(np.float32)
    valid = np.isfinite(metres)
    err = surface_error(xyz[valid], which[valid], World())
    ray_len = np.sqrt(1 + rays.x[valid] ** 2 + rays.y[valid] ** 2)
    assert (err < 0.001 + 0.0005 * ray_len).all(), err.max()


def test_depth_at_another_resolution_takes_labels_through_its_own_camera_info(
        scene: dict[str, np.ndarray]) -> None:
    """A registered depth image at half the colour resolution (its own camera_info): each
    depth pixel gets the label of the colour pixel its ray falls on."""
    depth_cam = pinhole(W // 2, H // 2, F / 2)
    rays = RayTable.for_camera(depth_cam)
    depth, truth_labels, _ = render(World(), rays.x.astype(np.float64),
                                    rays.y.astype(np.float64), POSE.matrix)
    pixel_map = colour_pixel_map(depth_cam, pinhole())
    assert colour_pixel_map(pinhole(), pinhole()) is None
    cloud = CloudBuffer(H // 2, W // 2).fill(depth.astype(np.float32), rays, scene["labels"],
                                             None, pixel_map=pixel_map)
    assert (cloud[:, :, 12] == truth_labels).mean() > 0.97  # label edges may shift a pixel
    with pytest.raises(ConfigError, match="depth/camera_info"):
        CloudBuffer(H // 2, W // 2).fill(depth.astype(np.float32), rays, scene["labels"], None)


# ------------------------------------------------------------------------------ grid


def depth_grid(scene: dict[str, np.ndarray], max_h: float, stride: int = STRIDE) -> np.ndarray:
    metres = depth_to_metres("16UC1", H, W, 2 * W, to_millimetres(scene["depth"]).tobytes())
    marker = DepthGridMarker(SPEC, POSE, RayTable.for_camera(pinhole()),
                             MarkingSettings(0.05, 0.1, max_h, stride=stride))
    return marker.update(metres, scene["labels"], traversable_table()).copy()


def flat_grid(scene: dict[str, np.ndarray], mode: str = "contact") -> np.ndarray:
    projector = GroundProjector(SPEC, pinhole(), POSE, obstacle_mode=mode)
    return projector.update(scene["labels"], TRAVERSABLE).copy()


def cells_of(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    r = SPEC.resolution
    return (slice(round((y0 - SPEC.origin_y) / r), round((y1 - SPEC.origin_y) / r)),
            slice(round((x0 - SPEC.origin_x) / r), round((x1 - SPEC.origin_x) / r)))


def test_table_top_above_the_robot_is_free_except_where_its_legs_stand(
        scene: dict[str, np.ndarray]) -> None:
    """The top is 0.86..0.90 m, max_obstacle_height 0.8 m: only the legs are obstacles."""
    grid = depth_grid(scene, max_h=0.8)
    xs, ys = SPEC.cell_centres()
    legs = occupancy_truth(World(), xs, ys, 0.1, 0.8, SPEC.resolution)
    under = np.zeros_like(legs)
    under[cells_of(2.2, 3.0, -0.3, 0.5)] = True
    assert not (grid[under & ~legs] == 100).any()
    leg_cells = under & legs
    assert (grid[leg_cells] == 100).mean() > 0.5  # the legs the camera sees
    assert (grid[under & ~legs] == 0).mean() > 0.5  # free floor, seen under the top


def seen_occupied(cells: np.ndarray) -> float:
    """Share of the cells the depth grid knows that it marks occupied (a grazing view samples
    a surface sparsely: cells between samples stay unknown, never free)."""
    known = cells[cells != UNKNOWN]
    return float((known == 100).mean()) if known.size else 0.0


def test_table_top_below_max_obstacle_height_is_occupied_where_seen(
        scene: dict[str, np.ndarray]) -> None:
    top = depth_grid(scene, max_h=1.5)[cells_of(2.2, 3.0, -0.3, 0.5)]
    assert seen_occupied(top) > 0.9 and (top != UNKNOWN).mean() > 0.4


def test_boxes_and_ramp_are_placed_where_they_are(scene: dict[str, np.ndarray]) -> None:
    grid = depth_grid(scene, max_h=0.8)
    for box_cells in (cells_of(2.0, 2.4, -1.4, -0.9), cells_of(3.4, 3.7, 0.9, 1.3)):
        assert seen_occupied(grid[box_cells]) > 0.9 and (grid[box_cells] != UNKNOWN).mean() > 0.5
    # The ramp rises 0.3 m over 1.2 m: free where it is within 5 cm of the floor (x < 1.8),
    # an obstacle where it is higher than 0.1 m (x > 2.0).
    assert (grid[cells_of(1.6, 1.8, 1.0, 1.4)] == 0).mean() > 0.8
    assert seen_occupied(grid[cells_of(2.05, 2.8, 1.0, 1.4)]) > 0.9


@pytest.mark.parametrize("mode", ["contact", "projected"])
@pytest.mark.parametrize("max_h", [0.8, 1.5])
def test_depth_grid_agrees_with_the_truth_better_than_the_flat_grid(
        scene: dict[str, np.ndarray], max_h: float, mode: str) -> None:
    """Agreement with the occupancy truth on the cells both grids know, for both flat-floor
    obstacle modes; and on every cell the depth grid knows."""
    grid, flat = depth_grid(scene, max_h), flat_grid(scene, mode)
    xs, ys = SPEC.cell_centres()
    truth = occupancy_truth(World(), xs, ys, 0.1, max_h, SPEC.resolution)
    both = (grid != UNKNOWN) & (flat != UNKNOWN)
    assert both.sum() > 2000
    depth_ok = ((grid[both] == 100) == truth[both]).mean()
    flat_ok = ((flat[both] == 100) == truth[both]).mean()
    assert depth_ok > 0.98 and depth_ok > flat_ok + 0.03, (depth_ok, flat_ok)
    known = grid != UNKNOWN
    assert ((grid[known] == 100) == truth[known]).mean() > 0.98


def test_the_default_stride_samples_sparsely_but_stays_right(scene: dict[str, np.ndarray]
                                                             ) -> None:
    """Every 2nd pixel (depth.grid_stride's default): fewer cells known, still > 95 % right;
    a grazing surface's cells between samples may read as the floor seen under them."""
    xs, ys = SPEC.cell_centres()
    for max_h in (0.8, 1.5):
        grid = depth_grid(scene, max_h, stride=MarkingSettings().stride)
        truth = occupancy_truth(World(), xs, ys, 0.1, max_h, SPEC.resolution)
        known = grid != UNKNOWN
        assert known.sum() > 5000
        assert ((grid[known] == 100) == truth[known]).mean() > 0.95


def test_pixels_without_depth_fall_back_to_the_flat_rule(scene: dict[str, np.ndarray]) -> None:
    metres = depth_to_metres("16UC1", H, W, 2 * W, to_millimetres(scene["depth"]).tobytes())
    metres[:, W // 2:] = np.nan  # the right half of the image has no return
    marker = DepthGridMarker(SPEC, POSE, RayTable.for_camera(pinhole()),
                             MarkingSettings(0.05, 0.1, 0.8))
    grid = marker.update(metres, scene["labels"], traversable_table()).copy()
    flat_proj = GroundProjector(SPEC, pinhole(), POSE)
    flat = flat_proj.update(scene["labels"], TRAVERSABLE).copy()
    before = grid.copy()
    fill_from_flat(grid, flat, flat_proj.lut, metres)
    lut = flat_proj.lut
    no_depth = lut.cells[~np.isfinite(metres.reshape(-1)[lut.pixels])]
    took = np.zeros(grid.size, bool)
    took[no_depth] = True
    took &= before.reshape(-1) == UNKNOWN
    assert took.sum() > 1000
    np.testing.assert_array_equal(grid.reshape(-1)[took], flat.reshape(-1)[took])
    np.testing.assert_array_equal(grid.reshape(-1)[~took], before.reshape(-1)[~took])


def test_marking_settings_refuse_inverted_heights() -> None:
    with pytest.raises(ConfigError, match="min_obstacle_height"):
        MarkingSettings(0.2, 0.1, 1.0)
    with pytest.raises(ConfigError, match="grid_stride"):
        MarkingSettings(stride=0)


# ------------------------------------------------------------------------------ stamps


def test_stamp_buffer_takes_the_same_stamp_else_the_nearest_within_the_skew() -> None:
    from seg_ros.depth.stamps import StampBuffer

    buf: StampBuffer[str] = StampBuffer(span_ns=150)
    for stamp, name in ((100, "a"), (200, "b"), (205, "c"), (300, "d")):
        buf.put(stamp, name)
    assert buf.received == 4
    assert buf.nearest(200, 10) == ("b", 0)          # exact beats a nearer-looking newer one
    assert buf.nearest(203, 10) == ("c", 2)
    assert buf.nearest(290, 9) is None               # 10 ns away: beyond the skew
    assert buf.nearest(290, None) == ("d", 10)       # the real gap, for the diagnostics
    assert buf.nearest(100, 50) is None              # dropped: older than 300 - 150


def test_stamp_buffer_keeps_a_time_span_whatever_the_rate() -> None:
    """150 Hz depth keeps as much stamp time as 15 Hz (a count of 16 kept ~107 ms); a stamp
    far in the past (a bag looping) restarts the buffer instead of being evicted at once."""
    from seg_ros.depth.stamps import StampBuffer

    ms = 1_000_000
    for hz in (15, 150):
        buf: StampBuffer[int] = StampBuffer(span_ns=400 * ms)
        for k in range(3 * hz):
            buf.put(k * 1000 * ms // hz, k)
        newest = (3 * hz - 1) * 1000 * ms // hz
        assert buf.nearest(newest - 300 * ms, 1000 * ms // hz) is not None, hz
        assert len(buf) == 400 * hz // 1000 + 1, (hz, len(buf))
    buf.put(5 * ms, -1)
    assert buf.restarts == 1 and buf.nearest(5 * ms, 0) == (-1, 0) and len(buf) == 1
    small: StampBuffer[int] = StampBuffer(span_ns=10**12, max_items=8)
    for k in range(100):
        small.put(k, k)
    assert len(small) == 8


def test_wide_labels_and_no_confidence_keep_the_layout() -> None:
    """More than 255 classes: label is UINT16 at 12, confidence still UINT8 at 14 (0 when the
    model gives none); x y z NaN where there is no return."""
    from seg_ros.depth import cloud_fields

    assert cloud_fields(True, False)[3:] == [("label", 12, 4), ("confidence", 14, 2)]
    rays = RayTable.for_camera(pinhole(8, 6, 5.0))
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, 0] = np.nan
    labels = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    cloud = CloudBuffer(6, 8, wide_labels=True).fill(depth, rays, labels, None)
    np.testing.assert_array_equal(cloud[:, :, 12:14].copy().view("<u2")[:, :, 0], labels)
    assert (cloud[:, :, 14] == 0).all()
    assert np.isnan(cloud[0, 0, :12].copy().view(np.float32)).all()


@pytest.mark.parametrize("model, d", [
    ("plumb_bob", (-0.3, 0.1, 0.001, -0.002, 0.01)),
    ("rational_polynomial", (-0.3, 0.1, 0.001, -0.002, 0.01, 0.02, 0.01, 0.003)),
    ("rational_polynomial", (-0.3, 0.1, 0.001, -0.002, 0.01, 0.02, 0.01, 0.003, 1e-3, 2e-3,
                             3e-3, 4e-3)),
    ("equidistant", (0.1, -0.02, 0.003, -0.001)),
    ("plumb_bob", ()),
])
def test_jacobian_free_projection_equals_opencv(model: str, d: tuple[float, ...]) -> None:
    """The depth -> colour map's own lens math lands where cv2.projectPoints does (1e-9 px),
    NaN where CameraModel.project refuses (beyond the lens's max angle)."""
    from seg_ros.depth.rays import project_normalised

    cam = CameraModel(640, 480, (300.0, 0, 320, 0, 305.0, 240, 0, 0, 1), d, model,
                      roi=Roi(8, 4, 600, 440))
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1.5, 1.5, 4000), rng.uniform(-1.5, 1.5, 4000)
    ours = project_normalised(cam, x, y).T
    cv = cam.project(np.stack([x, y, np.ones_like(x)], axis=1))
    assert np.array_equal(np.isfinite(ours), np.isfinite(cv))
    ok = np.isfinite(cv)
    assert np.abs(ours[ok] - cv[ok]).max() < 1e-9


def test_depth_to_colour_map_of_a_full_hd_depth_costs_under_50_mb() -> None:
    """A 1920x1080 depth camera mapped onto a 640x480 colour one: built block by block without
    a Jacobian (cv2.projectPoints needed ~1.1 GB), the result is the only large allocation."""
    import tracemalloc

    from seg_ros.depth.rays import _build, _pixel_map

    depth = CameraModel(1920, 1080, (1500.0, 0, 960, 0, 1500.0, 540, 0, 0, 1),
                        (0.05, -0.01, 0.0, 0.0, 0.0))
    colour = CameraModel(640, 480, (500.0, 0, 320, 0, 500.0, 240, 0, 0, 1),
                         (-0.1, 0.02, 0.0, 0.0, 0.0))
    _build.cache_clear()
    _pixel_map.cache_clear()
    tracemalloc.start()
    try:
        index = colour_pixel_map(depth, colour)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert index is not None and index.shape == (1080, 1920)
    assert peak < 50e6, f"{peak / 1e6:.0f} MB to build one map"
    centre = index[540, 960]  # the optical axis lands on the colour principal point
    assert (centre // 640, centre % 640) == (240, 320)
    _build.cache_clear()
    _pixel_map.cache_clear()


def test_map_cache_builds_beside_the_caller_and_keeps_six_calibrations() -> None:
    """A big depth camera's maps are built on the cache's thread (None meanwhile); six
    alternating calibrations stay cached: no rebuild per frame."""
    from seg_ros.depth.maps import MapCache

    cache = MapCache(keep=8)
    colour = pinhole(160, 120, 100.0)
    big = pinhole(800, 600, 500.0)
    assert cache.get(big, colour) is None  # 480k pixels: requested, not built here
    assert cache.wait(big, colour, timeout=60) is not None
    cams = [pinhole(80, 60, 50.0 + k) for k in range(6)]
    for _ in range(3):
        for cam in cams:
            assert cache.get(cam, colour) is not None  # small: built inline the first time
    assert cache.status.builds == 1 + 6
    cache.close()
