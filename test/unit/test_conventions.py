"""Foreign models in every common output convention, carded with `seg-ros card` only, then run
by `seg-ros segment` and compared with onnxruntime run directly on the same frame.

The models are real torch exports with fixed seeded weights (tiny: fast on two cores). The
reference for score outputs is the argmax of the bilinearly upsampled scores (>= 99.5 % of
pixels must agree); for label maps nearest-neighbour resizing (100 %)."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
from torch_conventions import (  # noqa: E402
    CARD_FLAGS,
    INPUT,
    MEAN,
    STD,
    Backbone,
    engine_input,
    export,
    reference_labels,
)

from seg_ros.cli import main  # noqa: E402


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
