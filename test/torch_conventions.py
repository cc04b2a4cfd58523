"""PyTorch models in every common output convention (logits NCHW / NHWC, probabilities with a
second output, sigmoid, label maps of three shapes, a dynamic input), exported to ONNX with
fixed seeded weights and no card, and onnxruntime's reference labels for them: shared by the
conventions and card tests and the node test that runs such a model live."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from torch import nn

INPUT = (192, 256)  # (H, W) the static models take
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # what `seg-ros card` assumes by default
STD = np.array([0.229, 0.224, 0.225], np.float32)


class Backbone(nn.Module):
    """Two stride-2 convolutions (stride 4 out), or one (stride 2), then a 1x1 head."""

    def __init__(self, classes: int, stride: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.ReLU()]
        if stride == 4:
            layers += [nn.Conv2d(12, 12, 3, stride=2, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(12, classes, 1))

    def forward(self, x):
        return self.body(x)


class Wrapped(nn.Module):
    """The backbone's scores turned into one output convention."""

    def __init__(self, convention: str) -> None:
        super().__init__()
        classes = 1 if convention == "sigmoid" else 5
        stride = 2 if convention in ("sigmoid", "labels_1hw", "labels_11hw", "labels_hw") else 4
        self.net, self.convention = Backbone(classes, stride), convention

    def forward(self, x):
        s, c = self.net(x), self.convention
        if c == "nhwc":
            return s.permute(0, 2, 3, 1)
        if c == "probabilities":
            return torch.softmax(s, 1), s.mean(1)  # a second output: --output must pick
        if c == "sigmoid":
            return torch.sigmoid(s)
        if c == "labels_1hw":
            return s.argmax(1)  # int64 (1, h, w)
        if c == "labels_11hw":
            return s.argmax(1, keepdim=True).to(torch.int32)
        if c == "labels_hw":
            return s.argmax(1)[0].to(torch.uint8)
        return s  # logits, NCHW, stride 4 (also the dynamic model)


def export(convention: str, path: Path) -> Path:
    net = Wrapped(convention).eval()
    names = ["probs", "aux"] if convention == "probabilities" else ["output"]
    dynamic = {"pixel_values": {2: "height", 3: "width"}} if convention == "dynamic" else None
    torch.onnx.export(net, (torch.zeros(1, 3, *INPUT),), str(path), input_names=["pixel_values"],
                      output_names=names, opset_version=17, dynamic_axes=dynamic, dynamo=False)
    return path


CARD_FLAGS = {
    "logits": [],
    "nhwc": ["--classes", "a,b,c,d,e"],
    "probabilities": ["--output", "probs", "--classes", "a,b,c,d,e"],
    "sigmoid": [],
    "labels_1hw": ["--classes", "a,b,c,d,e"],
    "labels_11hw": ["--classes", "a,b,c,d,e"],
    "labels_hw": ["--classes", "a,b,c,d,e"],
    "dynamic": ["--input-size", f"{INPUT[0]}x{INPUT[1]}"],
}


def engine_input(rgb: np.ndarray) -> np.ndarray:
    """The frame as the models take it, written independently of the segmenter."""
    x = cv2.resize(rgb, INPUT[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    return ((x - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


def reference_labels(model: Path, convention: str, rgb: np.ndarray) -> np.ndarray:
    """onnxruntime on the uncarded model, the argmax of the bilinearly upsampled scores."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"pixel_values": engine_input(rgb)})[0]
    size = (rgb.shape[1], rgb.shape[0])
    if convention.startswith("labels"):
        cells = out.reshape(out.shape[-2:]).astype(np.uint8)
        return cv2.resize(cells, size, interpolation=cv2.INTER_NEAREST_EXACT)
    if convention == "sigmoid":
        p = cv2.resize(out[0, 0], size, interpolation=cv2.INTER_LINEAR)
        return (p > 0.5).astype(np.uint8)
    scores = out[0].transpose(2, 0, 1) if convention == "nhwc" else out[0]
    up = np.stack([cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR) for plane in scores])
    return up.argmax(0).astype(np.uint8)
