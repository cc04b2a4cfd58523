"""`seg-ros card` on models without a card: the errors that name the fixing flag, `info` on a
card-less model, editing a card, class groups (segment and eval see the groups), a TorchScript
model through its sidecar, and many input files for `segment`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from torch_conventions import INPUT, Backbone, export  # noqa: E402

from seg_ros.cli import main  # noqa: E402
from seg_ros.engines import open_engine  # noqa: E402
from seg_ros.model_card import read_card  # noqa: E402
from seg_ros.segmenter import Segmenter  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CAMVID_SPEC = REPO / "config" / "camvid_dataset.yaml"


def one_line_error(capsys, argv: list[str]) -> str:
    """Run `seg-ros ARGV`, expect exit status 2 and one line on stderr; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def foreign(tmp_path) -> Path:
    """5-class logits named 'output' at stride 4, no card: the usual exported model."""
    return export("logits", tmp_path / "foreign.onnx")


def test_bad_input_names_the_flag(foreign, tmp_path, capsys):
    out = ["--out", str(tmp_path / "c.onnx")]
    assert "--output with one of output" in one_line_error(
        capsys, ["card", str(foreign), *out, "--output", "scores"])
    err = one_line_error(capsys, ["card", str(foreign), *out, "--classes", "a,b,c"])
    assert "outputs 5 classes but its card lists 3" in err and "--classes" in err
    dyn = export("dynamic", tmp_path / "dyn.onnx")
    assert "pass --input-size HxW" in one_line_error(capsys, ["card", str(dyn), *out])
    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n  - {name: floor, classes: [road, carpet]}\n"
                      "  - {name: other, classes: rest}\n")
    err = one_line_error(capsys, ["card", str(foreign), *out, "--classes",
                                  "road,car,sky,tree,person", "--groups", str(groups)])
    assert "'carpet' is neither a class name nor an id" in err and "--groups" in err
    err = one_line_error(capsys, ["card", str(foreign), *out, "--colors", "#ff0000,#00ff00"])
    assert "--colors gives 2 colours for 5 classes" in err
    assert "--out NEW.onnx" in one_line_error(capsys, ["card", str(foreign)])
    assert not (tmp_path / "c.onnx").exists()


def test_cardless_model_is_refused_with_commands_that_exist(foreign, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    err = one_line_error(capsys, ["segment", str(foreign), str(image), "--out",
                                  str(tmp_path / "out")])
    assert "seg-ros card" in err and "seg-ros info" in err
    assert main(["info", str(foreign)]) == 1
    said = capsys.readouterr().out
    assert "output  output (1, 5, 48, 64) tensor(float)" in said
    command = said.strip().splitlines()[-1].strip()
    assert command.startswith(f"seg-ros card {foreign} --classes")
    from seg_ros.cli import COMMANDS

    assert command.split()[1] in COMMANDS  # the command it names exists


def test_card_edits_a_card_and_keeps_the_rest(foreign, tmp_path, capsys):
    carded = tmp_path / "c.onnx"
    assert main(["card", str(foreign), "--out", str(carded), "--classes",
                 "road,car,sky,tree,person", "--traversable", "road", "--scale", "1",
                 "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375",
                 "--channel-order", "bgr", "--name", "street"]) == 0
    assert main(["card", str(carded), "--in-place", "--traversable", "road,4"]) == 0
    card = read_card(carded)
    assert card.name == "street" and card.class_names[0] == "road"
    assert card.traversable == (0, 4) and card.scale == 1.0 and card.channel_order == "BGR"
    assert card.mean == (123.675, 116.28, 103.53) and card.output == "output"
    assert main(["info", str(carded)]) == 0
    assert "'output': logits NCHW" in capsys.readouterr().out
    # the engine sees (pixel - mean) / std in BGR for scale 1: same as 1/255 with mean / 255
    seg = Segmenter(open_engine(carded))
    rgb = np.random.default_rng(1).integers(0, 255, (192, 256, 3), np.uint8)
    want = (rgb[..., ::-1].astype(np.float32) - np.float32([123.675, 116.28, 103.53])) \
        / np.float32([58.395, 57.12, 57.375])
    np.testing.assert_allclose(seg.preprocess(rgb)[0], want.transpose(2, 0, 1), atol=1e-4)


def test_classes_from_a_dataset_yaml(tmp_path):
    model = tmp_path / "camvid_like.onnx"
    torch.onnx.export(Backbone(11).eval(), torch.zeros(1, 3, *INPUT), str(model),
                      input_names=["x"], output_names=["logits"], dynamo=False)
    carded = tmp_path / "c.onnx"
    assert main(["card", str(model), "--out", str(carded), "--classes", str(CAMVID_SPEC)]) == 0
    card = read_card(carded)
    assert card.class_names[3] == "Road" and card.traversable == (3, 4)
    assert card.colors[3] == (128, 64, 128) and card.ignore_index == 11


GROUPS = """\
groups:
  - {name: floor, classes: [Road, Pavement], color: [0, 200, 0], traversable: true}
  - {name: person, classes: [Pedestrian, Bicyclist]}
  - {name: sky, classes: [Sky]}
  - {name: obstacle, classes: rest, color: [200, 0, 0]}
"""


def test_groups_are_what_segment_and_eval_see(camvid_dir, tmp_path, capsys):
    camvid = REPO / "models" / "camvid.onnx"
    (tmp_path / "g.yaml").write_text(GROUPS)
    grouped = tmp_path / "grouped.onnx"
    assert main(["card", str(camvid), "--out", str(grouped), "--groups",
                 str(tmp_path / "g.yaml")]) == 0
    assert main(["info", str(grouped)]) == 0
    assert "floor            rgb(0, 200, 0)  floor  <- Road, Pavement" in capsys.readouterr().out
    seg, raw = Segmenter(open_engine(grouped)), Segmenter(open_engine(camvid))
    assert seg.card.class_names == ("floor", "person", "sky", "obstacle")
    assert seg.card.traversable == (0,) and raw.card.num_classes == 11
    lut = np.array([2, 3, 3, 0, 0, 3, 3, 3, 3, 1, 1], np.uint8)
    frame = sorted((camvid_dir / "val").iterdir())[0]
    rgb = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(seg(rgb).labels, lut[raw(rgb).labels])
    # eval: the confusion of the groups is the grouped confusion of the classes
    for model, out in ((camvid, "raw.json"), (grouped, "grouped.json")):
        assert main(["eval", str(model), "--data", str(camvid_dir), "--limit", "2",
                     "--json", str(tmp_path / out)]) == 0
    cm = np.array(json.loads((tmp_path / "raw.json").read_text())["confusion"])
    res = json.loads((tmp_path / "grouped.json").read_text())
    assert res["class_names"] == ["floor", "person", "sky", "obstacle"]
    want = np.zeros((4, 4), np.int64)
    np.add.at(want, (lut[:, None].repeat(11, 1), lut[None, :].repeat(11, 0)), cm)
    np.testing.assert_array_equal(np.array(res["confusion"]), want)


def test_torchscript_model_through_its_sidecar(camvid_frame, tmp_path, capsys):
    net = Backbone(5).eval()
    pt = tmp_path / "net.pt"
    torch.jit.trace(net, torch.zeros(1, 3, *INPUT)).save(str(pt))
    onnx_path = tmp_path / "net.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, *INPUT), str(onnx_path), input_names=["x"],
                      output_names=["output"], dynamo=False)
    assert main(["card", str(pt), "--classes", "a,b,c,d,e"]) == 2  # dynamic: needs a size
    capsys.readouterr()
    size = f"{INPUT[0]}x{INPUT[1]}"
    assert main(["card", str(pt), "--classes", "a,b,c,d,e", "--input-size", size]) == 0
    assert (tmp_path / "net.pt.json").is_file()
    assert main(["card", str(onnx_path), "--classes", "a,b,c,d,e", "--in-place"]) == 0
    assert main(["info", str(pt)]) == 0
    assert "'output': logits NCHW" in capsys.readouterr().out
    rgb = camvid_frame[0]
    a = Segmenter(open_engine(pt))(rgb).labels
    b = Segmenter(open_engine(onnx_path))(rgb).labels
    assert len(np.unique(b)) > 1 and float((a == b).mean()) >= 0.995


def test_segment_takes_files_and_folders(tiny_model, camvid_dir, tmp_path):
    frames = sorted((camvid_dir / "val").iterdir())[:3]
    folder = tmp_path / "more"
    folder.mkdir()
    for f in frames[1:]:
        (folder / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "out"
    assert main(["segment", str(tiny_model), str(frames[0]), str(frames[1]), str(folder),
                 "--out", str(out)]) == 0
    labels = sorted(p.name for p in out.glob("*_labels.png"))
    # frames[1] given twice (as a file and in the folder): told apart by the folder name
    assert len(labels) == 4 and f"more_{frames[1].stem}_labels.png" in labels


def test_embedded_card_needs_no_onnx_to_read(foreign, tmp_path):
    """The card goes in through `onnx` (offline) and comes out through onnxruntime."""
    carded = tmp_path / "c.onnx"
    assert main(["card", str(foreign), "--out", str(carded)]) == 0
    props = {p.key: p.value for p in onnx.load(str(carded)).metadata_props}
    assert json.loads(props["seg_ros.model_card"])["output_name"] == "output"
    assert read_card(carded).num_classes == 5


def test_engine_sidecar_is_edited_without_running_the_engine(foreign, tmp_path, capsys):
    from seg_ros.model_card import write_sidecar

    engine = tmp_path / "net.engine"
    engine.write_bytes(b"serialized engine")  # never run: only its sidecar is edited
    assert "card the .onnx it was built from" in one_line_error(capsys, ["card", str(engine)])
    carded = tmp_path / "c.onnx"
    assert main(["card", str(foreign), "--out", str(carded), "--classes", "a,b,c,d,e"]) == 0
    write_sidecar(read_card(carded), engine)
    assert main(["card", str(engine), "--traversable", "b", "--classes", "a,b,c,d,floor"]) == 0
    card = read_card(engine)
    assert card.traversable == (1,) and card.class_names[4] == "floor"
    assert card.output == "output" and card.input_size == INPUT
    err = one_line_error(capsys, ["card", str(engine), "--out", str(tmp_path / "x.engine")])
    assert "--out is for ONNX files" in err


def test_ambiguity_is_an_error_naming_the_flag(tmp_path, capsys):
    two = export("probabilities", tmp_path / "two.onnx")  # outputs 'probs' and 'aux'
    out = ["--out", str(tmp_path / "c.onnx")]
    err = one_line_error(capsys, ["card", str(two), *out])
    assert "has outputs probs, aux" in err and "--output NAME" in err
    square = tmp_path / "square.onnx"  # (1, 16, 16, 16): channels first or last?
    torch.onnx.export(Backbone(16).eval(), torch.zeros(1, 3, 64, 64), str(square),
                      input_names=["x"], output_names=["out"], dynamo=False)
    assert "--layout nchw or --layout nhwc" in one_line_error(capsys, ["card", str(square), *out])
    assert main(["card", str(square), *out, "--layout", "nchw"]) == 0
    assert "logits, NCHW, 16 channels at 16x16 (stride 4)" in capsys.readouterr().out
