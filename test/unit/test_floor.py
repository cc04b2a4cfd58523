"""seg_ros.floor against known truth: label images ray-cast from a known camera pose onto a floor
with known rectangles (pinhole, plumb_bob, equidistant, rolled, ROI + binning), the LUT rebuild
policy, every error message, and the CLI's nav2 map files read back as nav2 map_server does."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from floor_world import (
    FLOOR,
    OCC,
    RUG,
    TRAVERSABLE,
    World,
    floor_hits,
    nav2_load,
    read_pgm,
    render,
    truth_grid,
)

from seg_ros.cli import main as cli_main
from seg_ros.errors import ConfigError
from seg_ros.floor import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    CameraModel,
    CameraPose,
    GridSpec,
    GroundProjector,
    Roi,
)

# (class, x0, x1, y0, y1) in metres on z = 0 of the grid frame; later entries paint over.
SCENE = World(((FLOOR, 0.5, 6.0, -2.0, 2.0), (OCC, 2.0, 3.0, -0.5, 0.8),
               (RUG, 3.0, 5.0, 2.0, 3.5)))
K640 = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
PLUMB_BOB = (-0.28, 0.09, 0.001, -0.0015, -0.012)
FISHEYE_K = (260.0, 0.0, 320.0, 0.0, 262.0, 240.0, 0.0, 0.0, 1.0)
FISHEYE_D = (0.05, -0.01, 0.004, -0.001)
SPEC = GridSpec(resolution=0.05, width_m=8.0, height_m=8.0, origin_x=-1.0, origin_y=-4.0,
                max_range_m=7.0)


def painted(spec: GridSpec = SPEC, camera: CameraModel | None = None,
            pose: CameraPose | None = None) -> GroundProjector:
    """A projector in projected mode: the flat painted scene has nothing standing up, and its
    painted obstacle must not hide the floor behind it in these geometry tests."""
    return GroundProjector(spec, camera, pose, obstacle_mode="projected")


def check_against_truth(camera: CameraModel, pose: CameraPose, spec: GridSpec = SPEC,
                        min_visible: int = 3000) -> np.ndarray:
    labels = render(camera, pose, SCENE)
    proj = painted(spec, camera, pose)
    grid = proj.update(labels, TRAVERSABLE).copy()
    visible = grid != UNKNOWN
    assert visible.sum() >= min_visible, "visible region is trivial"
    assert (grid[visible] == FREE).sum() > 300 and (grid[visible] == OCCUPIED).sum() > 300
    agree = (grid == truth_grid(spec, SCENE))[visible].mean()
    assert agree >= 0.99, f"only {agree:.2%} of visible cells match the truth"
    # Visibility truth from the other direction: cells hit by rays of interior pixels (2 px
    # from the border), within range less one cell, must be visible.
    hits, down = floor_hits(camera, pose)
    h, w = camera.image_height, camera.image_width
    v, u = np.divmod(np.arange(h * w), w)
    interior = down & (u >= 2) & (u < w - 2) & (v >= 2) & (v < h - 2)
    t = pose.matrix[:3, 3]
    rng = np.hypot(hits[:, 0] - t[0], hits[:, 1] - t[1])
    col = np.floor((hits[:, 0] - spec.origin_x) / spec.resolution)
    row = np.floor((hits[:, 1] - spec.origin_y) / spec.resolution)
    keep = interior & (rng < spec.max_range_m - spec.resolution)
    keep &= (col >= 0) & (col < spec.cols) & (row >= 0) & (row < spec.rows)
    seen = visible[row[keep].astype(int), col[keep].astype(int)]
    assert seen.mean() >= 0.99, f"only {seen.mean():.2%} of cells seen by pixels are visible"
    return grid


# ------------------------------------------------------------------------ known truth


def pitched() -> CameraPose:
    return CameraPose.from_xyz_rpy(0.1, 0.0, 1.0, 0.0, 0.45, 0.0)


def test_pinhole_pitched_matches_truth() -> None:
    grid = check_against_truth(CameraModel(640, 480, K640), pitched())
    # Nothing behind the camera: every cell with x < camera x is unknown.
    xs, _ = SPEC.cell_centres()
    assert (grid[:, xs < 0.1] == UNKNOWN).all()


def test_plumb_bob_rolled_matches_truth() -> None:
    camera = CameraModel(640, 480, K640, PLUMB_BOB, "plumb_bob")
    pose = CameraPose.from_xyz_rpy(-0.2, 0.3, 1.2, 0.2, 0.5, 0.15)
    check_against_truth(camera, pose)


def test_rational_polynomial_matches_truth() -> None:
    d = (-0.2, 0.05, 0.0005, -0.001, 0.0, 0.02, 0.0, 0.001)
    check_against_truth(CameraModel(640, 480, K640, d, "rational_polynomial"), pitched())


def test_equidistant_matches_truth() -> None:
    camera = CameraModel(640, 480, FISHEYE_K, FISHEYE_D, "equidistant")
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 0.8, -0.1, 0.6, -0.2)
    check_against_truth(camera, pose)


def test_distortion_matters() -> None:
    """Ignoring plumb_bob distortion misplaces cells: the truth check is sensitive to it."""
    camera = CameraModel(640, 480, K640, PLUMB_BOB, "plumb_bob")
    labels = render(camera, pitched(), SCENE)
    grid = painted(SPEC, CameraModel(640, 480, K640), pitched()).update(labels, TRAVERSABLE)
    visible = grid != UNKNOWN
    assert (grid == truth_grid(SPEC, SCENE))[visible].mean() < 0.97


def test_roi_and_binning_match_truth() -> None:
    k = (1000.0, 0.0, 639.5, 0.0, 1000.0, 479.5, 0.0, 0.0, 1.0)
    full = CameraModel(1280, 960, k, PLUMB_BOB)
    camera = CameraModel.from_camera_info_fields(
        1280, 960, k, PLUMB_BOB, "plumb_bob", binning_x=2, binning_y=2,
        roi=(160, 120, 960, 720, False))
    assert (camera.image_width, camera.image_height) == (480, 360)
    pts = np.array([[0.3, 0.2, 2.0], [-0.5, 0.1, 3.0]])
    expected = (full.project(pts) - (160, 120)) / 2
    np.testing.assert_allclose(camera.project(pts), expected, atol=1e-9)
    check_against_truth(camera, pitched(), min_visible=2000)


def test_max_range_and_horizon() -> None:
    spec = GridSpec(0.05, 40.0, 20.0, 0.0, -10.0, max_range_m=5.0)
    camera = CameraModel(640, 480, K640)
    grid = GroundProjector(spec, camera, CameraPose.from_xyz_rpy(0, 0, 1.0, 0, 0.1, 0)).update(
        np.full((480, 640), FLOOR, np.uint8), TRAVERSABLE)
    xs, ys = spec.cell_centres()
    dist = np.hypot(*np.meshgrid(xs, ys))
    assert (grid[dist > 5.0] == UNKNOWN).all()
    assert (grid[(dist < 4.9) & (grid != UNKNOWN)] == FREE).all()
    assert (grid != UNKNOWN).sum() > 1000


def test_strong_distortion_does_not_fold_back() -> None:
    """Beyond the monotonic radius OpenCV's polynomial folds back into the image; refused."""
    camera = CameraModel(640, 480, K640, (-0.5, 0.1, 0.0, 0.0, 0.0))
    assert camera.max_angle < math.radians(60)
    far = np.array([[math.tan(math.radians(75)), 0.0, 1.0]])
    assert np.isnan(camera.project(far)).all()
    assert np.isnan(camera.project(np.array([[0.0, 0.0, -1.0]]))).all()


# ------------------------------------------------------------------------------ pose


def test_pose_conventions() -> None:
    pose = CameraPose.from_xyz_rpy(0.2, 0.0, 1.0, 0.0, 0.3, 0.0)
    r = pose.matrix[:3, :3]
    # Optical z (viewing direction) is forward and down; optical x points right (-y).
    np.testing.assert_allclose(r[:, 2], (math.cos(0.3), 0.0, -math.sin(0.3)), atol=1e-12)
    np.testing.assert_allclose(r[:, 0], (0.0, -1.0, 0.0), atol=1e-12)
    # A 4x4 of the body frame (camera_link) gives the same optical pose as x y z r p y.
    body = np.eye(4)
    cp, sp = math.cos(0.3), math.sin(0.3)
    body[:3, :3] = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    body[:3, 3] = (0.2, 0.0, 1.0)
    assert CameraPose.from_matrix(body, frame="body") == pose
    assert CameraPose.from_matrix(pose.matrix) == pose  # tf2 T_grid_optical
    q = (0.0, math.sin(0.15), 0.0, math.cos(0.15))  # body rotation about y by 0.3 rad
    assert CameraPose.from_translation_quaternion((0.2, 0.0, 1.0), q, "body") == pose


def test_camera_under_ground() -> None:
    with pytest.raises(ConfigError, match=r"z=-0\.100 m .* under the ground .* z > 0"):
        CameraPose.from_xyz_rpy(0, 0, -0.1, 0, 0.4, 0)
    with pytest.raises(ConfigError, match="under the ground"):
        CameraPose.from_matrix(np.eye(4))


# ------------------------------------------------------------------------ rebuild policy


def test_lut_rebuilds_only_on_change() -> None:
    camera = CameraModel(640, 480, K640, PLUMB_BOB)
    labels = render(camera, pitched(), SCENE)
    proj = painted(SPEC, camera, pitched())
    first = proj.update(labels, TRAVERSABLE).copy()
    for _ in range(3):  # equal values in new objects, as each camera_info / tf lookup gives
        proj.configure(camera=CameraModel(640, 480, tuple(map(float, K640)),
                                          tuple(map(float, PLUMB_BOB))),
                       pose=pitched(), spec=GridSpec(**SPEC.__dict__))
        np.testing.assert_array_equal(proj.update(labels, TRAVERSABLE), first)
    assert proj.builds == 1
    proj.configure(pose=CameraPose.from_xyz_rpy(0.1, 0.0, 1.0, 0.0, 0.5, 0.0))
    proj.update(labels, TRAVERSABLE)
    assert proj.builds == 2
    proj.configure(spec=GridSpec(0.1, 8.0, 8.0, -1.0, -4.0, 7.0))
    assert proj.update(labels, TRAVERSABLE).shape == (80, 80)
    proj.configure(camera=CameraModel(640, 480, K640))
    proj.update(labels, TRAVERSABLE)
    assert proj.builds == 4


def test_min_confidence_leaves_cells_unknown() -> None:
    camera = CameraModel(640, 480, K640)
    labels = render(camera, pitched(), SCENE)
    proj = painted(SPEC, camera, pitched())
    full = proj.update(labels, TRAVERSABLE).copy()
    confidence = np.full(labels.shape, 200, np.uint8)
    confidence[:, :320] = 50  # left half of the image is unsure
    grid = proj.update(labels, TRAVERSABLE, confidence, min_confidence=128)
    pix = proj.lut.pixel_index
    unsure = (pix >= 0) & (pix % 640 < 320)
    assert unsure.sum() > 1000
    assert (grid[unsure] == UNKNOWN).all()
    np.testing.assert_array_equal(grid[~unsure], full[~unsure])
    out = np.zeros_like(full)  # a caller-owned buffer is filled completely
    np.testing.assert_array_equal(proj.update(labels, TRAVERSABLE, out=out), full)


def test_uint16_labels() -> None:
    camera = CameraModel(640, 480, K640)
    labels = render(camera, pitched(), SCENE).astype(np.uint16) + 1000
    grid = painted(SPEC, camera, pitched()).update(labels, (1000 + FLOOR, 1000 + RUG))
    visible = grid != UNKNOWN
    assert (grid == truth_grid(SPEC, SCENE))[visible].mean() >= 0.99


# ------------------------------------------------------------------------ camera info


CALIBRATION_YAML = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.28, 0.09, 0.001, -0.0015, -0.012]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [420.0, 0.0, 318.0, 0.0, 0.0, 430.0, 238.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_camera_calibration_yaml(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(CALIBRATION_YAML)
    camera = CameraModel.from_yaml(path)
    assert camera == CameraModel(640, 480, K640, PLUMB_BOB, "plumb_bob")
    assert hash(camera) == hash(CameraModel(640, 480, K640, PLUMB_BOB))
    assert (camera.image_width, camera.image_height) == (640, 480)
    path.write_text("image_width: 640\n")
    with pytest.raises(ConfigError, match="has no 'camera_matrix': it is not a camera_calib"):
        CameraModel.from_yaml(path)


def test_from_camera_info_message() -> None:
    from types import SimpleNamespace as Msg

    roi = Msg(x_offset=8, y_offset=4, width=320, height=240, do_rectify=False)
    msg = Msg(width=640, height=480, k=K640, d=PLUMB_BOB, distortion_model="plumb_bob",
              binning_x=1, binning_y=1, roi=roi)
    camera = CameraModel.from_camera_info(msg)
    assert camera.roi == Roi(8, 4, 320, 240, False)
    assert (camera.image_width, camera.image_height) == (320, 240)


def test_camera_errors() -> None:
    with pytest.raises(ConfigError, match="K is all zeros: the camera is uncalibrated; calibrate"):
        CameraModel(640, 480, (0.0,) * 9)
    with pytest.raises(ConfigError, match="'kannala' is not supported: use one of plumb_bob"):
        CameraModel(640, 480, K640, (0.1,) * 4, "kannala")
    with pytest.raises(ConfigError, match="equidistant needs"):
        CameraModel(640, 480, K640, PLUMB_BOB, "equidistant")
    with pytest.raises(ConfigError, match="roi .* exceeds the 640x480 sensor"):
        CameraModel(640, 480, K640, roi=Roi(400, 0, 320, 240))


# what a hostile or broken driver sends -> the words of the refusal
BAD_CAMERA_INFOS: dict[str, tuple[dict[str, Any], str]] = {
    "NaN fx": (dict(K=(math.nan, 0, 320, 0, 500, 240, 0, 0, 1)), "NaN or inf"),
    "NaN cx": (dict(K=(500, 0, math.nan, 0, 500, 240, 0, 0, 1)), "NaN or inf"),
    "inf fy": (dict(K=(500, 0, 320, 0, math.inf, 240, 0, 0, 1)), "NaN or inf"),
    "fx 1e300": (dict(K=(1e300, 0, 320, 0, 500, 240, 0, 0, 1)), r"fx=1e\+300"),
    "NaN in D": (dict(D=(math.nan, 0, 0, 0, 0)), "NaN or inf"),
    "inf in D": (dict(D=(0, math.inf, 0, 0, 0)), "NaN or inf"),
    "k1 1e6": (dict(D=(1e6, 0, 0, 0, 0)), "no real lens"),
    "cx 1e9": (dict(K=(500, 0, 1e9, 0, 500, 240, 0, 0, 1)), "far outside"),
    "K last row": (dict(K=(500, 0, 320, 0, 500, 240, 0, 0, 0)), "not \\[0, 0, 1\\]"),
    "zero-size roi": (dict(roi=Roi(5000, 5000, 0, 0)), "offset .* but no size"),
}


@pytest.mark.parametrize("case", BAD_CAMERA_INFOS)
def test_camera_info_with_nan_inf_or_absurd_values_is_refused(case: str) -> None:
    fields, match = BAD_CAMERA_INFOS[case]
    kw: dict[str, Any] = {"K": K640, **fields}
    with pytest.raises(ConfigError, match=match):
        CameraModel(640, 480, **kw)


def test_grid_errors() -> None:
    with pytest.raises(ConfigError, match=r"4,000,000: coarsen the resolution .* or shrink"):
        GridSpec(0.02, 100.0, 100.0)
    with pytest.raises(ConfigError, match="resolution=0.0 must be a positive"):
        GridSpec(0.0)
    proj = GroundProjector(SPEC, CameraModel(640, 480, K640), pitched())
    with pytest.raises(ConfigError, match="label image is 320x240 but the camera image is 640x480"):
        proj.update(np.zeros((240, 320), np.uint8), TRAVERSABLE)
    with pytest.raises(ConfigError, match="pass uint8 or uint16"):
        proj.update(np.zeros((480, 640), np.int32), TRAVERSABLE)
    with pytest.raises(ConfigError, match="no pose yet: call configure"):
        GroundProjector(SPEC, CameraModel(640, 480, K640)).update(
            np.zeros((480, 640), np.uint8), TRAVERSABLE)


# ------------------------------------------------------------------------------- CLI


def test_cli_writes_nav2_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A free rug to the robot's LEFT (y > 0) must land in the pgm's upper rows: image row 0 is
    the grid's far y edge (nav2 flips rows on load), and forward x runs along the columns."""
    (tmp_path / "cam.yaml").write_text(CALIBRATION_YAML)
    camera = CameraModel.from_yaml(tmp_path / "cam.yaml")
    scene = World(((RUG, 1.0, 3.0, 0.3, 1.5),))  # everything else is grass (occupied)
    pose_args = ["0", "0", "1.0", "0", "0.5", "0"]
    labels = render(camera, CameraPose.from_xyz_rpy(*map(float, pose_args)), scene)
    cv2.imwrite(str(tmp_path / "labels.png"), labels)
    out = tmp_path / "maps" / "map.yaml"
    rc = cli_main(["floor", str(tmp_path / "labels.png"), "--traversable", "3,4",
                   "--camera-info", str(tmp_path / "cam.yaml"), "--pose", *pose_args,
                   "--resolution", "0.05", "--size", "6", "4", "--origin", "0", "-2",
                   "--obstacle-mode", "projected", "--out", str(out)])
    assert rc == 0 and "120x80 cells" in capsys.readouterr().out
    meta = yaml.safe_load(out.read_text())
    assert meta["image"] == "map.pgm" and meta["mode"] == "trinary"
    assert meta["resolution"] == 0.05 and meta["origin"] == [0.0, -2.0, 0.0]
    assert meta["negate"] == 0 and meta["occupied_thresh"] == 0.65
    pgm = read_pgm(out.with_suffix(".pgm"))
    assert pgm.shape == (80, 120)
    assert set(np.unique(pgm)) == {0, 205, 254}
    rows, cols = np.nonzero(pgm == 254)
    # y in [0.3, 1.5] -> grid rows 46..70 -> pgm rows 80-70..80-46 = 10..34 (upper half).
    assert rows.min() >= 9 and rows.max() <= 34 and len(rows) > 200
    # x in [1, 3] -> columns 20..60.
    assert cols.min() >= 20 and cols.max() <= 60
    # nav2 map_server reads back the exact grid, unknown included.
    spec = GridSpec(0.05, 6.0, 4.0, 0.0, -2.0, 8.0)
    expected = painted(spec, camera, CameraPose.from_xyz_rpy(0, 0, 1.0, 0, 0.5, 0))
    np.testing.assert_array_equal(nav2_load(meta, pgm), expected.update(labels, (3, 4)))
    assert (tmp_path / "maps" / "map_preview.png").is_file()
    # --model takes the traversable ids from the card (CamVid: road 3, pavement 4).
    from seg_ros.model_card import camvid_card, write_sidecar

    model = tmp_path / "camvid.engine"
    model.write_bytes(b"not read")
    write_sidecar(camvid_card(), model)
    out2 = tmp_path / "card" / "map.yaml"
    assert cli_main(["floor", str(tmp_path / "labels.png"), "--model", str(model),
                     "--camera-info", str(tmp_path / "cam.yaml"), "--pose", *pose_args,
                     "--size", "6", "4", "--origin", "0", "-2", "--obstacle-mode", "projected",
                     "--out", str(out2)]) == 0
    np.testing.assert_array_equal(read_pgm(out2.with_suffix(".pgm")), pgm)


def test_floor_imports_neither_rclpy_nor_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, seg_ros.floor; bad = {'rclpy', 'torch'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cam.yaml").write_text(CALIBRATION_YAML.replace("500.0", "0.0")
                                       .replace("319.5", "0.0").replace("239.5", "0.0")
                                       .replace(", 1.0]\ndistortion_model", ", 0.0]\n"
                                                "distortion_model"))
    cv2.imwrite(str(tmp_path / "labels.png"), np.zeros((480, 640), np.uint8))
    args = ["floor", str(tmp_path / "labels.png"), "--camera-info", str(tmp_path / "cam.yaml"),
            "--pose", "0", "0", "1", "0", "0.5", "0", "--out", str(tmp_path / "m.yaml")]
    assert cli_main([*args, "--traversable", "3"]) == 2
    assert "K is all zeros" in capsys.readouterr().err
    assert cli_main([*args, "--traversable", "floor"]) == 2
    assert "--traversable 3,4" in capsys.readouterr().err
