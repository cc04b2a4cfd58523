"""Foreign models in the layouts the conventions of other frameworks give them: NHWC inputs as
tf2onnx writes TensorFlow / Keras / TFLite models, one-channel outputs (a sigmoid mask, raw
binary logits, channels last), carded with `seg-ros card` only and compared pixel by pixel with
onnxruntime run directly; and every refusal of `card` on a foreign model one line naming the
flag that fixes it, without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from foreign_models import HALF, IMAGENET, SIZE, reference, tf2onnx_like, wide_output

from seg_ros.cli import main
from seg_ros.model_card import read_card

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

# name -> (build, card flags, normalisation, NHWC input, NHWC output, reference kind)
CASES = {
    "tf_nhwc_scores": (lambda p: tf2onnx_like(p, "logits"),
                       ["--classes", "background,person,car", "--mean", "0.5", "--std", "0.5"],
                       HALF, True, True, "scores"),
    "tf_sigmoid_1x192x256x1": (lambda p: tf2onnx_like(p, "sigmoid1", seed=1), [], IMAGENET, True,
                              True, "sigmoid"),
    "tf_binary_logits_nhwc": (lambda p: tf2onnx_like(p, "logits1", seed=2), [], IMAGENET, True,
                              True, "logits1"),
    "torch_binary_logits": (lambda p: torch_logits1(p),
                            ["--output-kind", "logits", "--classes", "background,crack"],
                            IMAGENET, False, False, "logits1"),
}


class BinaryHead(nn.Module):
    """A stride-2 net with one output channel of raw logits (as BCEWithLogitsLoss trains)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 1, 1))

    def forward(self, x):
        return 40.0 * self.body(x)


def torch_logits1(path: Path) -> Path:
    torch.onnx.export(BinaryHead().eval(), torch.zeros(1, 3, *SIZE), str(path),
                      input_names=["x"], output_names=["logits"], opset_version=17,
                      dynamo=False)
    return path


def card_and_reference(case: str, tmp_path: Path, rgb: np.ndarray
                       ) -> tuple[Path, np.ndarray, str]:
    """(carded model, reference labels of ``rgb``, what `card` printed) for one case."""
    build, flags, norm, nhwc_in, nhwc_out, kind = CASES[case]
    model = build(tmp_path / f"{case}.onnx")
    carded = tmp_path / f"{case}.carded.onnx"
    out = subprocess.run([sys.executable, "-m", "seg_ros.cli", "card", str(model), "--out",
                          str(carded), *flags], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return carded, reference(model, rgb, SIZE, norm, nhwc_in, nhwc_out, kind), out.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_carded_foreign_layout_segments_like_onnxruntime(case, frame_png, tmp_path):
    path, rgb = frame_png
    carded, want, said = card_and_reference(case, tmp_path, rgb)
    card = read_card(carded)
    nhwc_in, nhwc_out, kind = CASES[case][3:]
    assert card.input_layout == ("nhwc" if nhwc_in else "nchw")
    assert card.layout == ("nhwc" if nhwc_out else "nchw")  # a 1x192x256x1 output too
    assert ("NHWC, channels last (auto" in said) == nhwc_in
    assert "normalise" in said and ("--mean/--std/--scale" in said) == (case != "tf_nhwc_scores")
    if kind == "logits1":
        assert card.output_kind == "logits" and card.num_classes == 2
        assert "binary logits" in said
        if case.startswith("tf_"):  # chosen from the probe run's values, and said so
            assert "outside 0..1, so not probabilities" in said
    if kind == "sigmoid":
        assert card.output_kind == "sigmoid" and "within 0..1" in said
    if case == "tf_nhwc_scores":
        assert card.colors[0] == (0, 0, 0) and card.colors[1] != (0, 0, 0)
    assert main(["segment", str(carded), str(path), "--out", str(tmp_path / "out")]) == 0
    got = cv2.imread(str(tmp_path / "out" / "frame_labels.png"), cv2.IMREAD_UNCHANGED)
    assert got.shape == want.shape == rgb.shape[:2]
    assert want.mean() > 0.02 if kind != "scores" else len(np.unique(want)) > 1
    agree = float((got == want).mean())
    assert agree >= 0.995, agree


def test_info_shows_the_input_layout(tmp_path, capsys):
    model = tf2onnx_like(tmp_path / "m.onnx", "logits")
    carded = tmp_path / "c.onnx"
    assert main(["info", str(model)]) == 1
    assert "(NHWC)" in capsys.readouterr().out
    assert main(["card", str(model), "--out", str(carded)]) == 0
    capsys.readouterr()
    assert main(["info", str(carded)]) == 0
    said = capsys.readouterr().out
    assert f"NHWC (1x{SIZE[0]}x{SIZE[1]}x3)" in said, said
    assert main(["info", str(carded), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_layout"] == "nhwc"


def test_input_layout_override_and_the_size_of_an_nhwc_graph(tmp_path, capsys):
    """--input-size HxW of an NHWC graph is its H and W (not H=W, W=3); an explicit
    --input-layout nhwc is what auto would choose; a one-channel output's --threshold is a
    probability, also for logits (0.9 = logit 2.2)."""
    model = tf2onnx_like(tmp_path / "m.onnx", "logits1", seed=2)
    carded = tmp_path / "c.onnx"
    assert main(["card", str(model), "--out", str(carded), "--input-size",
                 f"{SIZE[0]}x{SIZE[1]}", "--input-layout", "nhwc", "--threshold", "0.9"]) == 0
    card = read_card(carded)
    assert card.input_layout == "nhwc" and card.threshold == 0.9
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    # a frame of the output's size: labels cell for cell
    rgb = np.random.default_rng(0).integers(0, 255, (SIZE[0] // 2, SIZE[1] // 2, 3), np.uint8)
    seg = Segmenter(open_engine(carded))
    logits = seg.infer(seg.preprocess(rgb))["Identity:0"][0, ..., 0]
    out = seg(rgb)
    assert np.array_equal(out.labels, (logits > np.log(9.0)).astype(np.uint8))
    p = 1 / (1 + np.exp(-logits))
    assert np.abs(out.confidence.astype(float) - 255 * np.maximum(p, 1 - p)).max() <= 1.0


class Strided(nn.Module):
    """A dynamic-input net whose skip connection needs H and W in multiples of 32 (five
    stride-2 levels, upsampled x32 and added to the input resolution)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, 2, 1) for i in range(5)])
        self.skip = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        up = nn.functional.interpolate(self.down(x), scale_factor=32.0, mode="nearest")
        return self.head(up + self.skip(x))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_ros.cli", *args], capture_output=True,
                          text=True, timeout=300)


def one_line_naming(r: subprocess.CompletedProcess, *words: str) -> str:
    """The refusal's one stderr line (no traceback), holding every word of ``words``."""
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign")
    strided = d / "strided.onnx"
    torch.onnx.export(Strided().eval(), torch.zeros(1, 3, 64, 96), str(strided),
                      input_names=["x"], output_names=["out"], opset_version=17, dynamo=False,
                      dynamic_axes={"x": {2: "h", 3: "w"}})
    return {"nhwc": tf2onnx_like(d / "nhwc.onnx", "logits"),
            "logits1": tf2onnx_like(d / "logits1.onnx", "logits1", seed=2),
            "strided": strided,
            "huge_input": tf2onnx_like(d / "huge.onnx", "logits", size=(20000, 20000)),
            "wide": wide_output(d / "wide.onnx", 10000, (256, 256))}


REFUSALS = {
    "channels elsewhere": ("nhwc", ["--input-layout", "nchw"], ["--input-layout nhwc"]),
    "threshold 0": ("logits1", ["--threshold", "0"], ["--threshold", "logit"]),
    "three classes for one channel": ("logits1", ["--classes", "a,b,c"],
                                      ["--classes", "2 classes"]),
    "probabilities in one channel": ("logits1", ["--output-kind", "probabilities"],
                                     ["--output-kind", "sigmoid"]),
    "size the strides refuse": ("strided", ["--input-size", "470x630"],
                                ["470x630", "--input-size 480x640", "multiples of 32"]),
    "20000x20000 input": ("huge_input", [], ["20000x20000", "4096x4096"]),
    "10000 output channels": ("wide", [], ["10000", "GiB", "limit"]),
}


@pytest.mark.parametrize("what", list(REFUSALS))
def test_card_refuses_a_foreign_model_in_one_line_naming_the_fix(what, foreign, tmp_path):
    model, flags, words = REFUSALS[what]
    r = cli("card", str(foreign[model]), "--out", str(tmp_path / "x.onnx"), *flags)
    one_line_naming(r, *words)
    assert not (tmp_path / "x.onnx").exists()


def test_the_sizes_it_names_work(foreign, tmp_path):
    carded = tmp_path / "s.onnx"
    r = cli("card", str(foreign["strided"]), "--out", str(carded), "--input-size", "480x640")
    assert r.returncode == 0, r.stderr
    assert read_card(carded).input_size == (480, 640)


ODD = ["two_inputs", "uint8_input", "unbatched", "grey", "all_dynamic", "rank5", "sequence",
       "nhwc_ids"]


@pytest.mark.parametrize("kind", ODD)
def test_no_traceback_for_any_model_onnxruntime_loads(kind, tmp_path):
    """Each odd graph loads in onnxruntime; `card` refuses it in one line naming a flag or the
    re-export it needs."""
    import onnxruntime as ort
    from foreign_models import odd_model

    model = odd_model(tmp_path / f"{kind}.onnx", kind)
    ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    flags = ["--input-size", "32x32"] if kind == "all_dynamic" else []
    line = one_line_naming(cli("card", str(model), "--out", str(tmp_path / "x.onnx"), *flags))
    assert " --" in line or "re-export" in line, line
    if kind == "nhwc_ids":  # with the classes named it is a label map, recorded as NHWC
        r = cli("card", str(model), "--out", str(tmp_path / "x.onnx"), "--classes", "a,b,c")
        assert r.returncode == 0, r.stderr
        assert read_card(tmp_path / "x.onnx").layout == "nhwc"


@pytest.mark.parametrize("order, resize", [("RGB", "stretch"), ("BGR", "letterbox")])
def test_channels_last_input_is_the_channels_first_one_transposed(order, resize):
    """The preprocessor writes an NHWC card's input directly (no transpose afterwards): the
    same values as the NCHW input, channel order, normalisation and letterbox padding
    included."""
    from seg_ros.model_card import camvid_card
    from seg_ros.preprocess import Preprocessor

    rgb = np.random.default_rng(1).integers(0, 255, (300, 500, 3), np.uint8)
    kw = dict(channel_order=order, resize=resize, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    first = Preprocessor(camvid_card(**kw), (120, 160)).preprocess(rgb).copy()
    last = Preprocessor(camvid_card(**kw, input_layout="nhwc"), (120, 160)).preprocess(rgb)
    assert first.shape == (1, 3, 120, 160) and last.shape == (1, 120, 160, 3)
    np.testing.assert_allclose(last, first.transpose(0, 2, 3, 1), atol=1e-5)


def test_an_nhwc_batch_equals_single_frames(tmp_path):
    """tf2onnx leaves the batch dynamic: several cameras' frames go in one NHWC call."""
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    carded = tmp_path / "c.onnx"
    assert main(["card", str(tf2onnx_like(tmp_path / "m.onnx", "logits")), "--out",
                 str(carded)]) == 0
    seg = Segmenter(open_engine(carded))
    assert seg.max_batch == 0 and seg.engine.input_shape == (1, *SIZE, 3)
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 255, (h, w, 3), np.uint8) for h, w in ((240, 320), (120, 200))]
    batch = seg.preprocess_batch(frames)
    assert batch.shape == (2, *SIZE, 3)
    for frame, outputs in zip(frames, seg.infer_batch(batch)):
        single = seg(frame)
        assert np.array_equal(seg.postprocess(outputs, frame.shape[:2]).labels, single.labels)


@pytest.mark.usefixtures("fake_trt")
def test_tensorrt_builds_and_binds_an_nhwc_input(tmp_path, camvid_frame):
    """Through the stand-in TensorRT (test/fake_tensorrt.py; onnxruntime computes the engine's
    outputs): the optimisation profile of the tf2onnx-style dynamic batch is NHWC, the input
    buffer is bound NHWC, and the labels of a 2-frame batch equal onnxruntime's."""
    import seg_ros.engines.tensorrt.build as trt_build
    from seg_ros.engines import open_engine
    from seg_ros.engines.tensorrt.options import BuildOptions
    from seg_ros.segmenter import Segmenter

    carded = tmp_path / "c.onnx"
    assert main(["card", str(tf2onnx_like(tmp_path / "m.onnx", "logits")), "--out",
                 str(carded)]) == 0
    from seg_ros.engines.tensorrt.plan import profile_shapes

    top = (2, *SIZE, 3)
    assert profile_shapes((-1, *SIZE, 3), SIZE, 2, "nhwc") == ((1, *SIZE, 3), top, top)
    out = trt_build.build_engine(carded, BuildOptions(out=tmp_path / "c.engine", max_batch=2))
    engine = open_engine(out, "tensorrt", "cuda")
    assert engine.input_shape == (1, *SIZE, 3) and engine.max_batch == 2
    assert engine._buf[engine.input_name].host.shape == (2, *SIZE, 3)
    seg, ref = Segmenter(engine), Segmenter(open_engine(carded, "onnxruntime"))
    frames = [camvid_frame[0], camvid_frame[0][::-1].copy()]
    per_frame = seg.infer_batch(seg.preprocess_batch(frames), want_confidence=False)
    for f, outputs in zip(frames, per_frame):
        np.testing.assert_array_equal(seg.labels(outputs, f.shape[:2]), ref(f).labels)
