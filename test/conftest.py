"""Shared fixtures: real CamVid frames, small real ONNX models exported with torch, the stand-in
TensorRT. Test modules live in unit/, node/, install/ and gpu/; the helpers more than one of
those rooms imports (cases/, floor_world, foreign_models, torch_conventions, fake_tensorrt,
trt_stand_in, fault_backend) live here, on the import path (pyproject: pytest pythonpath)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("SEG_ROS_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))

# Every process a test starts talks over Fast DDS's large-data transport, on loopback only,
# with a shared-memory segment that fits whole images (seg_ros/ros/fastdds_localhost.xml).
from seg_ros.ros.dds import use_local_env  # noqa: E402  (no rclpy import)

use_local_env()
# The venv is the tests' ROS install (`make ros-tools` builds tf2_ros, launch, vision_msgs and
# ros2 into it): ament_index finds packages (seg_ros's launch files, vision_msgs' definitions)
# where AMENT_PREFIX_PATH names it, as a sourced setup.bash would.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

from seg_ros.frames import read_rgb  # noqa: E402
from seg_ros.live import make_tiny_model  # noqa: E402  (torch only when called)


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
    assert labels is not None, name
    return read_rgb(camvid_dir / "val" / name), labels


@pytest.fixture(scope="session")
def frame_png(camvid_frame, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The first val frame written as a PNG file, and its RGB pixels."""
    rgb = camvid_frame[0]
    path = tmp_path_factory.mktemp("frames") / "frame.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path, rgb


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_logits_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny_logits.onnx",
                           output_kind="logits")


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The stand-in TensorRT on a made-up GPU with host buffers (trt_stand_in.py); what it
    was asked."""
    from trt_stand_in import install

    return install(monkeypatch)
