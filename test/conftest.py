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


@pytest.fixture(scope="session")
def camvid_dir() -> Path:
    if not (CAMVID / "val").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID} (set SEG_ROS_CAMVID to its folder)")
    return CAMVID


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def camvid_frame(camvid_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 360x480x3, labels uint8 360x480) of the first val frame."""
    name = sorted((camvid_dir / "val").iterdir())[0].name
    labels = cv2.imread(str(camvid_dir / "valannot" / name), cv2.IMREAD_GRAYSCALE)
    return read_rgb(camvid_dir / "val" / name), labels


def make_tiny_model(path: Path, input_size=(180, 240), output_kind: str = "labels",
                    num_classes: int = 11, seed: int = 0) -> Path:
    """A small real network (fixed seeded weights) exported to ONNX with a CamVid-style card."""
    import torch
    from torch import nn

    from seg_ros.model_card import ModelCard, camvid_card
    from seg_ros.train.export import export_onnx

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU6(),
        nn.Conv2d(16, num_classes, 1),
    )
    if num_classes == 11:
        card = camvid_card(name="tiny", input_size=input_size, output_kind=output_kind)
    else:
        card = ModelCard(name="tiny", class_names=[f"c{i}" for i in range(num_classes)],
                         colors=[(i % 256, 7 * i % 256, 13 * i % 256) for i in range(num_classes)],
                         input_size=input_size, output_kind=output_kind)
    return export_onnx(net, card, path)


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
