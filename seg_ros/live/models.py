"""Models and frames for live runs: a small real network (fixed seeded weights) exported to
ONNX with a model card, the shipped model when there is one, CamVid frames. torch is imported
only when a model is made."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seg_ros.model_card import OutputKind

REPO = Path(__file__).resolve().parents[2]


def make_tiny_model(path: Path, input_size: tuple[int, int] = (180, 240),
                    output_kind: OutputKind = "labels", num_classes: int = 11, seed: int = 0,
                    batch: int = 1) -> Path:
    """Three convolutions (stride 2) exported to ``path``; 11 classes get the CamVid card,
    other counts classes ``c0..cN`` with made-up colours. ``input_size``: (H, W) px;
    ``batch``: frames per call (0 = dynamic, see seg_ros.train.export.export_onnx)."""
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
        card = ModelCard(name="tiny", class_names=tuple(f"c{i}" for i in range(num_classes)),
                         colors=tuple((i % 256, 7 * i % 256, 13 * i % 256)
                                      for i in range(num_classes)),
                         input_size=input_size, output_kind=output_kind)
    return export_onnx(net, card, path, batch=batch)


def shipped_or_tiny_model(input_size: tuple[int, int] = (360, 480)) -> Path:
    """models/camvid.onnx when the checkout has it, else a fresh tiny model at ``input_size``
    (H, W px) in a temp folder: what the benchmarks and the soak run."""
    import tempfile

    shipped = REPO / "models" / "camvid.onnx"
    if shipped.is_file():
        return shipped
    return make_tiny_model(Path(tempfile.mkdtemp(prefix="seg_ros_tiny_")) / "tiny.onnx",
                           input_size=input_size)


def camvid_frames(n: int = 8, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """``n`` RGB uint8 CamVid val frames resized to ``size`` (W, H px) when the data set is
    there (``SEG_ROS_CAMVID``), else smooth seeded noise of that size."""
    import cv2

    val = Path(os.environ.get("SEG_ROS_CAMVID", REPO.parent / "shared" / "datasets" /
                              "camvid")) / "val"
    paths = sorted(val.glob("*.png"))[:n] if val.is_dir() else []
    read = [bgr for p in paths if (bgr := cv2.imread(str(p))) is not None]
    if read:
        return [cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size) for bgr in read]
    rng = np.random.default_rng(0)
    return [cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8),
                             (0, 0), 5) for _ in range(n)]
