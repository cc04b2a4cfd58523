"""Foreign models in every common output convention, carded with `seg-ros card` only, then run
by `seg-ros segment` and compared with onnxruntime run directly on the same frame.

The models are real torch exports with fixed seeded weights (tiny: fast on two cores). The
reference for score outputs is the argmax of the bilinearly upsampled scores (>= 99.5 % of
pixels must agree); for label maps nearest-neighbour resizing (100 %)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from seg_ros.cli import main  # noqa: E402

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
    torch.onnx.export(net, torch.zeros(1, 3, *INPUT), str(path), input_names=["pixel_values"],
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


@pytest.mark.parametrize("convention", list(CARD_FLAGS))
def test_carded_model_segments_like_onnxruntime(convention, frame_png, tmp_path, capsys):
    path, rgb = frame_png
    model = export(convention, tmp_path / f"{convention}.onnx")
    carded = tmp_path / f"{convention}.carded.onnx"
    assert main(["card", str(model), "--out", str(carded), *CARD_FLAGS[convention]]) == 0
    said = capsys.readouterr().out
    kind = {"nhwc": "logits, NHWC", "dynamic": "logits, NCHW", "logits": "logits, NCHW"}.get(
        convention, "labels" if convention.startswith("labels") else convention)
    assert kind in said  # what `auto` decided, reported
    assert main(["segment", str(carded), str(path), "--out", str(tmp_path / "out")]) == 0
    got = cv2.imread(str(tmp_path / "out" / "frame_labels.png"), cv2.IMREAD_UNCHANGED)
    want = reference_labels(model, convention, rgb)
    assert got.shape == want.shape == rgb.shape[:2]
    assert len(np.unique(want)) > 1  # a non-trivial segmentation
    agree = float((got == want).mean())
    assert agree >= (1.0 if convention.startswith("labels") else 0.995), agree


def test_score_outputs_give_confidence_and_label_maps_do_not(tmp_path):
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    # the lowest possible: 1/5 for five classes, 1/2 for a sigmoid mask (x 255)
    for convention, has_conf, low in (("logits", True, 50), ("sigmoid", True, 127),
                                      ("labels_1hw", False, 0)):
        model = export(convention, tmp_path / f"{convention}.onnx")
        carded = tmp_path / f"{convention}.c.onnx"
        assert main(["card", str(model), "--out", str(carded), *CARD_FLAGS[convention]]) == 0
        out = Segmenter(open_engine(carded))(rgb)
        assert (out.confidence is not None) == has_conf, convention
        if has_conf:
            assert out.confidence.shape == rgb.shape[:2] and out.confidence.min() >= low
            assert out.confidence.max() > low + 10


def test_letterbox_keeps_the_aspect_and_crops_the_padding(frame_png, tmp_path):
    """A square-input model: the 4:3 frame is padded top and bottom, and the labels come back
    from the content rows only."""
    path, rgb = frame_png
    net = Backbone(5, 4).eval()
    model = tmp_path / "square.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 192, 192), str(model), input_names=["x"],
                      output_names=["output"], opset_version=17, dynamo=False)
    carded = tmp_path / "square.carded.onnx"
    assert main(["card", str(model), "--out", str(carded), "--resize", "letterbox"]) == 0
    assert main(["segment", str(carded), str(path), "--out", str(tmp_path / "out")]) == 0
    got = cv2.imread(str(tmp_path / "out" / "frame_labels.png"), cv2.IMREAD_UNCHANGED)
    # by hand: 360x480 -> 144x192 content, 24 rows of padding (0 = the mean colour) above
    x = np.zeros((1, 3, 192, 192), np.float32)
    small = cv2.resize(rgb, (192, 144), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x[0, :, 24:168] = ((small / 255 - MEAN) / STD).transpose(2, 0, 1)
    scores = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0][0][:, 6:42]  # the content rows of the stride-4 output
    up = np.stack([cv2.resize(p, (480, 360), interpolation=cv2.INTER_LINEAR) for p in scores])
    want = up.argmax(0)
    assert len(np.unique(want)) > 1
    assert float((got == want).mean()) >= 0.995


@pytest.mark.parametrize("convention", ["logits", "nhwc"])
def test_confidence_is_the_max_softmax_of_the_scores(convention, tmp_path):
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    model = export(convention, tmp_path / "m.onnx")
    carded = tmp_path / "m.c.onnx"
    assert main(["card", str(model), "--out", str(carded), *CARD_FLAGS[convention]]) == 0
    rgb = np.random.default_rng(2).integers(0, 255, (*INPUT, 3), np.uint8)
    seg = Segmenter(open_engine(carded))
    got = seg(rgb).confidence
    scores = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"pixel_values": engine_input(rgb)})[0][0].astype(np.float64)
    if convention == "logits":
        scores = scores.transpose(1, 2, 0)  # (h, w, C)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    top = (p.max(-1) / p.sum(-1) * 255).astype(np.float32)
    want = cv2.resize(top, INPUT[::-1], interpolation=cv2.INTER_LINEAR)
    assert np.abs(got.astype(np.float32) - want).max() <= 2.0
