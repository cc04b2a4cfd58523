"""Shared fixtures: real CamVid frames and small real ONNX models exported with torch."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("SEG_ROS_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))

# Every process a test starts talks over Fast DDS's large-data transport, on loopback only,
# with a shared-memory segment that fits whole images (seg_ros/ros/fastdds_localhost.xml).
from seg_ros.ros.dds import use_local_env  # noqa: E402  (no rclpy import)

use_local_env()

from seg_ros.frames import read_rgb  # noqa: E402
from seg_ros.testing import make_tiny_model  # noqa: E402  (torch only when called)


@pytest.fixture(scope="session")
def camvid_dir() -> Path:
    if not (CAMVID / "val").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID} (set SEG_ROS_CAMVID to its folder)")
    return CAMVID


@pytest.fixture(scope="session")
def camvid_frame(camvid_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 360x480x3, labels uint8 360x480) of the first val frame."""
    name = sorted((camvid_dir / "val").iterdir())[0].name
    labels = cv2.imread(str(camvid_dir / "valannot" / name), cv2.IMREAD_GRAYSCALE)
    return read_rgb(camvid_dir / "val" / name), labels


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_logits_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny_logits.onnx",
                           output_kind="logits")


@pytest.fixture(scope="session")
def vision_msgs_env(tmp_path_factory) -> dict[str, str]:
    """PYTHONPATH, LD_LIBRARY_PATH and AMENT_PREFIX_PATH (current values included) under which
    a child process imports vision_msgs (VisionClass, LabelInfo), built once per session by
    test/vision_msgs_build.py since no vision_msgs wheel exists; merge them into its env."""
    from vision_msgs_build import VisionMsgsBuildError, build_vision_msgs, missing_tools

    reason = missing_tools()
    if reason:
        pytest.skip(f"vision_msgs cannot be built: {reason}")
    try:
        return build_vision_msgs(tmp_path_factory.mktemp("vision_msgs"))
    except VisionMsgsBuildError as error:
        pytest.fail(str(error), pytrace=False)
