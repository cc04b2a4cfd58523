"""ROS-free views for robot consumers: the intrinsics of a resized output and of a binned ROI,
the class mask and the unlabelled marking."""

from __future__ import annotations

import numpy as np
import pytest

from seg_ros.errors import ConfigError
from seg_ros.floor import CameraModel
from seg_ros.intrinsics import parse_output_size, received_intrinsics, scaled_intrinsics
from seg_ros.masks import ClassMask, mark_unknown

K = (500.0, 0.0, 319.5, 0.0, 505.0, 239.5, 0.0, 0.0, 1.0)
P = (500.0, 0.0, 319.5, -25.0, 0.0, 505.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_received_intrinsics_agree_with_the_camera_model_for_roi_and_binning() -> None:
    roi, binning = (64, 32, 320, 240), (2, 2)
    cam = CameraModel.from_camera_info_fields(640, 480, K, binning_x=2, binning_y=2,
                                              roi=(*roi, False))
    got = received_intrinsics(640, 480, K, P, binning, roi)
    assert (got.width, got.height) == (cam.image_width, cam.image_height) == (160, 120)
    points = np.array([[0.1, -0.05, 2.0], [-0.2, 0.1, 3.0], [0.0, 0.0, 1.0]])
    uv = (np.array(got.k).reshape(3, 3) @ points.T).T
    assert np.allclose(uv[:, :2] / uv[:, 2:], cam.project(points), atol=1e-9)


def test_scaled_intrinsics_keep_each_pixel_ray() -> None:
    src = received_intrinsics(640, 480, K, P)
    dst = scaled_intrinsics(src, 160, 90)
    k_src, k_dst = np.array(src.k).reshape(3, 3), np.array(dst.k).reshape(3, 3)
    for u, v in ((0, 0), (159, 89), (80, 45)):
        u_src, v_src = (u + 0.5) * 4 - 0.5, (v + 0.5) * 480 / 90 - 0.5
        assert np.allclose(np.linalg.solve(k_dst, [u, v, 1]),
                           np.linalg.solve(k_src, [u_src, v_src, 1]), atol=1e-12)
    assert dst.p[3] == pytest.approx(-25.0 / 4)  # the baseline term scales with x


def test_output_size_values() -> None:
    assert parse_output_size("input") == "input" and parse_output_size(" Model ") == "model"
    assert parse_output_size("640x480") == (640, 480)
    for bad in ("640*480", "0x10", "big", "20000x10"):
        with pytest.raises(ConfigError, match="output_size"):
            parse_output_size(bad)


def test_class_mask_and_unlabelled() -> None:
    labels = np.array([[0, 3, 8], [9, 3, 1]], np.uint8)
    assert ClassMask([3, 8], 255)(labels).tolist() == [[0, 255, 255], [0, 255, 0]]
    assert ClassMask([9], 1, num_classes=300)(labels.astype(np.uint16)).tolist() == [
        [0, 0, 0], [1, 0, 0]]
    conf = np.array([[255, 100, 200], [10, 230, 255]], np.uint8)
    assert mark_unknown(labels, conf, 0.8).tolist() == [[0, 255, 255], [255, 3, 1]]  # < 204
    assert labels[0, 1] == 3  # the input is left as it was
