"""Model card, engines, segmenter and rendering on real ONNX models and real CamVid frames."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from seg_ros.engines import open_engine, register_backend
from seg_ros.errors import CodecError, EngineError
from seg_ros.model_card import (
    METADATA_KEY,
    ModelCard,
    ModelCardError,
    camvid_card,
    embed_in_onnx,
    read_card,
    write_sidecar,
)
from seg_ros.render import Palette, legend
from seg_ros.segmenter import Segmenter


def _reference(path, rgb):
    """Direct onnxruntime + argmax, written independently of the segmenter."""
    card = read_card(path)
    h, w = card.input_size
    x = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    x = (x - np.array(card.mean, np.float32)) / np.array(card.std, np.float32)
    x = x.transpose(2, 0, 1)[None].astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    size = (rgb.shape[1], rgb.shape[0])
    if "labels" in out:
        return cv2.resize(out["labels"][0], size, interpolation=cv2.INTER_NEAREST)
    # scores: bilinear upsampling, then argmax (the segmenter's documented convention)
    up = np.stack([cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR)
                   for plane in out["logits"][0]])
    return up.argmax(0).astype(np.uint8)


# --- model card ---------------------------------------------------------------------------

def test_card_round_trips_through_json_and_onnx(tiny_model, tmp_path):
    card = read_card(tiny_model)
    assert card.name == "tiny" and card.num_classes == 11 and card.traversable == (3, 4)
    assert ModelCard.from_json(card.to_json()) == card
    model = onnx.load(str(tiny_model))
    embed_in_onnx(card.with_provenance(note="x"), model)
    assert sum(p.key == METADATA_KEY for p in model.metadata_props) == 1
    sidecar = write_sidecar(card, tmp_path / "m.engine")
    (tmp_path / "m.engine").write_bytes(b"")
    assert sidecar.name == "m.engine.json"
    assert read_card(tmp_path / "m.engine") == card


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(colors=[(0, 0, 0)]), "11 class_names but 1 colors"),
        (dict(traversable=[12]), "traversable ids"),
        (dict(input_size=(0, 10)), "input_size"),
        (dict(output_kind="softmax"), "output_kind"),
        (dict(colors=[(0, 0, 300)] * 11), "RGB triple"),
    ],
)
def test_card_validation_names_the_fix(change, match):
    with pytest.raises(ModelCardError, match=match):
        camvid_card(**change)


def test_card_from_bad_json():
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.from_json("{", source="x.json")
    with pytest.raises(ModelCardError, match="unknown fields"):
        ModelCard.from_json(json.dumps({"name": "a", "class_names": ["a"], "colors": [[0, 0, 0]],
                                        "colour": 1}))


# --- engines --------------------------------------------------------------------------------

def test_missing_model(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        open_engine(tmp_path / "nope.onnx")


def test_corrupt_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 50)
    with pytest.raises(EngineError, match="not a loadable ONNX model.*re-export"):
        open_engine(bad)


def test_cardless_model(tiny_model, tmp_path):
    model = onnx.load(str(tiny_model))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ModelCardError, match="has no model card.*seg-ros export"):
        open_engine(bare)


def test_card_class_count_must_match_graph(tiny_logits_model, tmp_path):
    model = onnx.load(str(tiny_logits_model))
    card = camvid_card(name="wrong", input_size=(180, 240),
                       class_names=[f"c{i}" for i in range(5)], colors=[(1, 2, 3)] * 5,
                       traversable=[], ignore_index=None, output_kind="logits")
    embed_in_onnx(card, model)
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    with pytest.raises(EngineError, match="outputs 11 classes but its card lists 5"):
        open_engine(wrong)


def test_unknown_backend_and_tensorrt_unavailable(tiny_model, tmp_path):
    with pytest.raises(EngineError, match="unknown backend 'tflite'"):
        open_engine(tiny_model, backend="tflite")
    engine_file = tmp_path / "m.engine"
    engine_file.write_bytes(b"x")
    write_sidecar(read_card(tiny_model), engine_file)
    with pytest.raises(EngineError, match="TensorRT backend is not available.*onnxruntime"):
        open_engine(engine_file)


def test_registered_backend_is_used(tiny_model):
    calls = []

    class Recording:
        backend = "recording"

        def __init__(self, path, **kw):
            self.inner = open_engine(path, "onnxruntime")
            self.card, self.input_shape = self.inner.card, self.inner.input_shape

        def infer(self, batch, outputs=None):
            calls.append(batch.shape)
            return self.inner.infer(batch, outputs)

        def describe(self):
            return "recording"

    register_backend("recording", Recording)
    seg = Segmenter(open_engine(tiny_model, backend="recording"))
    seg(np.zeros((30, 40, 3), np.uint8))
    assert calls == [(1, 3, 180, 240)]


# --- segmenter ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tiny_model", "tiny_logits_model"])
def test_segmenter_equals_direct_onnxruntime(model, camvid_frame, request):
    path = request.getfixturevalue(model)
    rgb, _ = camvid_frame
    seg = Segmenter(open_engine(path, threads=1))
    out = seg(rgb)
    assert out.labels.shape == rgb.shape[:2] and out.labels.dtype == np.uint8
    assert out.confidence is not None and out.confidence.shape == rgb.shape[:2]
    assert len(np.unique(out.labels)) > 1  # a non-trivial segmentation
    np.testing.assert_array_equal(out.labels, _reference(path, rgb))
    assert seg(rgb, want_confidence=False).confidence is None


def test_torchscript_engine_matches_onnx(camvid_frame, tmp_path):
    import torch
    from torch import nn

    from seg_ros.train.export import export_onnx, export_torchscript

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 11, 1))
    card = camvid_card(name="ts", input_size=(90, 120))
    onnx_path = export_onnx(net, card, tmp_path / "m.onnx")
    ts_path = export_torchscript(net, card, tmp_path / "m.pt")
    rgb, _ = camvid_frame
    a = Segmenter(open_engine(onnx_path))(rgb).labels
    b = Segmenter(open_engine(ts_path))(rgb).labels
    assert np.mean(a == b) > 0.999


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocess_normalises_in_the_cards_channel_order(tiny_model, camvid_frame, order):
    import dataclasses

    card = dataclasses.replace(read_card(tiny_model), channel_order=order,
                               mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    rgb = camvid_frame[0]
    seg = Segmenter(open_engine(tiny_model), card)
    h, w = seg.model_size
    x = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if order == "BGR":
        x = x[..., ::-1]
    want = ((x / 255.0 - np.float32(card.mean)) / np.float32(card.std)).transpose(2, 0, 1)
    np.testing.assert_allclose(seg.preprocess(rgb)[0], want, rtol=1e-5, atol=1e-5)


def test_segmenter_rejects_bad_frames(tiny_model):
    seg = Segmenter(open_engine(tiny_model))
    with pytest.raises(CodecError, match="RGB uint8"):
        seg(np.zeros((10, 10), np.uint8))
    with pytest.raises(CodecError, match="RGB uint8"):
        seg(np.zeros((0, 10, 3), np.uint8))


def test_mono16_labels_for_many_classes(tmp_path, camvid_frame):
    from seg_ros.live import make_tiny_model

    path = make_tiny_model(tmp_path / "big.onnx", num_classes=300)
    out = Segmenter(open_engine(path))(camvid_frame[0])
    assert out.labels.dtype == np.uint16 and out.labels.max() < 300


# --- render ---------------------------------------------------------------------------------

def test_palette_matches_numpy_indexing_and_overlay():
    card = camvid_card()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 11, (37, 51), dtype=np.uint8)
    palette = Palette.from_card(card)
    mask = palette.color_mask(labels)
    np.testing.assert_array_equal(mask, np.array(card.colors, np.uint8)[labels])
    rgb = rng.integers(0, 256, (37, 51, 3), dtype=np.uint8)
    over = palette.overlay(rgb, labels, 0.25)
    expect = np.round(0.75 * rgb + 0.25 * mask.astype(np.float64))
    assert np.abs(over.astype(int) - expect).max() <= 1
    palette.set_visible([3])
    over = palette.overlay(rgb, labels, 0.25)
    np.testing.assert_array_equal(over[labels != 3], rgb[labels != 3])
    assert (over[labels == 3] != rgb[labels == 3]).any()
    wide = rng.integers(0, 300, (5, 7)).astype(np.uint16)
    assert palette.color_mask(wide).shape == (5, 7, 3)
    assert legend(card).shape[2] == 3


# --- CLI ------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "seg_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_info_and_segment(tiny_model, camvid_dir, tmp_path):
    r = _cli("info", tiny_model)
    assert r.returncode == 0 and "Road" in r.stdout and "floor" in r.stdout
    frames = tmp_path / "frames"
    frames.mkdir()
    names = sorted((camvid_dir / "val").iterdir())[:2]
    for p in names:
        (frames / p.name).write_bytes(p.read_bytes())
    r = _cli("segment", tiny_model, frames, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    for p in names:
        labels = cv2.imread(str(tmp_path / "out" / f"{p.stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (360, 480) and labels.dtype == np.uint8 and labels.max() < 11
        assert (tmp_path / "out" / f"{p.stem}_overlay.png").is_file()
        assert (tmp_path / "out" / f"{p.stem}_color.png").is_file()


def test_cli_errors_are_one_line(tmp_path):
    r = _cli("info", tmp_path / "missing.onnx")
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_plugin_backend_by_import_path(tiny_model):
    engine = open_engine(tiny_model, backend="seg_ros.engines.onnxruntime:OnnxRuntimeEngine")
    assert engine.card.name == "tiny"
    with pytest.raises(EngineError, match="cannot be imported"):
        open_engine(tiny_model, backend="no_such_module:Engine")


def test_engine_without_outputs_argument_is_refused_and_type_errors_surface(tiny_model):
    """infer(batch, outputs=None) is the protocol: an engine class without ``outputs`` is named
    at registration, and a TypeError raised inside infer() reaches the caller after one run
    (no silent second inference)."""
    from seg_ros.errors import EngineError

    class NoOutputs:
        backend = "no_outputs"

        def infer(self, batch):
            return {}

        def describe(self):
            return "no outputs"

    with pytest.raises(EngineError, match="takes no 'outputs' argument"):
        register_backend("no_outputs", NoOutputs)
    runs = []

    class Broken:
        backend = "broken"

        def __init__(self, path, **kw):
            inner = open_engine(path, "onnxruntime")
            self.card, self.input_shape = inner.card, inner.input_shape

        def infer(self, batch, outputs=None):
            runs.append(outputs)
            raise TypeError("a bug inside the engine")

        def describe(self):
            return "broken"

    register_backend("broken", Broken)
    seg = Segmenter(open_engine(tiny_model, backend="broken"))
    with pytest.raises(TypeError, match="a bug inside the engine"):
        seg(np.zeros((30, 40, 3), np.uint8), want_confidence=False)
    assert runs == [["labels"]]
