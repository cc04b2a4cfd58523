"""INT8 on the CPU: real onnxruntime static QDQ quantization of a real small model, calibrated on
real CamVid train frames, checked against the float model on CamVid val frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from seg_ros.cli import main
from seg_ros.engines import open_engine
from seg_ros.engines.calibration import CalibrationBatches, list_frames, preprocessor, read_rgb
from seg_ros.engines.quantize import FrameReader, QuantizeReport, float_tail_nodes, quantize_onnx
from seg_ros.errors import ConfigError
from seg_ros.model_card import read_card
from seg_ros.segmenter import Segmenter

# Measured on the tiny model: >= 99.4 % of pixels keep their fp32 label on CamVid val frames.
MIN_AGREEMENT = 0.98
CALIB_FRAMES = 16


@pytest.fixture(scope="module")
def quantized(tiny_model: Path, camvid_dir: Path, tmp_path_factory) -> QuantizeReport:
    out = tmp_path_factory.mktemp("int8") / "tiny.int8.onnx"
    return quantize_onnx(tiny_model, camvid_dir / "train", out, calib_frames=CALIB_FRAMES)


def test_quantized_model_loads_keeps_contract_and_card(quantized: QuantizeReport,
                                                       tiny_model: Path) -> None:
    engine = open_engine(quantized.out)
    assert engine.backend == "onnxruntime" and engine.input_shape == (1, 3, 180, 240)
    out = engine.infer(np.zeros(engine.input_shape, np.float32))
    assert out["labels"].dtype == np.uint8 and out["labels"].shape == (1, 180, 240)
    assert out["confidence"].dtype == np.float32
    card, fp32_card = read_card(quantized.out), read_card(tiny_model)
    assert card.class_names == fp32_card.class_names and card.input_size == (180, 240)
    assert card.provenance["precision"] == "int8"
    q = card.provenance["quantization"]
    assert q["calibration_frames"] == CALIB_FRAMES and q["calibration_data"] == "train"
    assert q["format"] == "QDQ" and "per-channel" in q["weights"]
    assert quantized.int8_bytes < quantized.fp32_bytes
    assert quantized.out.stat().st_size < tiny_model.stat().st_size


def test_quantized_labels_agree_with_fp32(quantized: QuantizeReport, tiny_model: Path,
                                          camvid_dir: Path) -> None:
    fp32, int8 = Segmenter(open_engine(tiny_model)), Segmenter(open_engine(quantized.out))
    agree = []
    for path in list_frames(camvid_dir / "val", 5):  # never the calibration split
        rgb = read_rgb(path)
        a, b = fp32(rgb), int8(rgb)
        agree.append(float(np.mean(a.labels == b.labels)))
        assert a.confidence is not None and b.confidence is not None
        assert np.abs(a.confidence.astype(int) - b.confidence).mean() < 2  # of 255
    assert min(agree) >= MIN_AGREEMENT, agree


def test_argmax_softmax_tail_stays_float(quantized: QuantizeReport, tiny_model: Path) -> None:
    tail = float_tail_nodes(onnx.load(str(tiny_model)))
    ops = {n.op_type for n in onnx.load(str(tiny_model)).graph.node if n.name in tail}
    # the exported head: upsample, argmax, and max softmax as 1 / sum(exp(l - max))
    assert ops == {"Resize", "ArgMax", "ReduceMax", "Squeeze", "Cast",
                   "Sub", "Exp", "ReduceSum", "Reciprocal"}
    graph = onnx.load(str(quantized.out)).graph
    producer = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        if n.op_type in ("Exp", "ReduceSum", "ArgMax", "ReduceMax", "Cast"):
            assert all(producer[i].op_type != "DequantizeLinear" for i in n.input if i in producer)
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) >= 3  # the convs are int8
    assert {n.op_type for n in graph.node} >= {"QuantizeLinear", "DequantizeLinear"}


def test_frame_reader_feeds_preprocessed_frames(camvid_dir: Path) -> None:
    from seg_ros.model_card import camvid_card

    card = camvid_card(input_size=(180, 240))
    frames = list_frames(camvid_dir / "train", 3)
    reader = FrameReader(CalibrationBatches(frames, card), "input")
    got = [reader.get_next() for _ in range(4)]
    assert got[3] is None and reader.count == 3
    pre = preprocessor(card)
    for feed, path in zip(got[:3], frames):
        assert feed is not None and feed["input"].shape == (1, 3, 180, 240)
        np.testing.assert_array_equal(feed["input"], pre.preprocess(read_rgb(path)))
    reader.rewind()
    assert reader.get_next() is not None


def test_quantize_cli(tiny_model: Path, camvid_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.int8.onnx"
    assert main(["quantize", str(tiny_model), "--calib-data", str(camvid_dir / "train"),
                 "--calib-frames", "4", "--out", str(out)]) == 0
    assert read_card(out).provenance["quantization"]["calibration_frames"] == 4
    assert "wrote" in capsys.readouterr().out
    # errors: one line, exit 2, naming the option / fix
    assert main(["quantize", str(tiny_model), "--calib-data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--calib-data" in err and "\n" not in err
    assert main(["quantize", str(out), "--calib-data", str(camvid_dir / "train"),
                 "--out", str(tmp_path / "y.onnx")]) == 2
    assert "already int8" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="overwrite"):
        quantize_onnx(tiny_model, camvid_dir / "train", tiny_model)


# --- TensorRT: symmetric int8 Q/DQ; fp16 graphs for strongly typed TensorRT ------------------

ROOT = Path(__file__).resolve().parents[2]
SHIPPED, SHIPPED_TRT = ROOT / "models" / "camvid.onnx", ROOT / "models" / "camvid.trt-int8.onnx"


@pytest.fixture(scope="module")
def trt_quantized(tiny_model: Path, camvid_dir: Path, tmp_path_factory) -> QuantizeReport:
    out = tmp_path_factory.mktemp("trt") / "tiny.trt-int8.onnx"
    return quantize_onnx(tiny_model, camvid_dir / "train", out, calib_frames=CALIB_FRAMES,
                         target="tensorrt", float_convs=1)  # the tiny model has 3 convs


def test_tensorrt_target_is_symmetric_int8_per_channel(trt_quantized: QuantizeReport,
                                                       tiny_model: Path, camvid_dir: Path
                                                       ) -> None:
    from onnx import numpy_helper

    from seg_ros.engines.tensorrt.graph import qdq_problems
    from seg_ros.engines.tensorrt.options import BuildOptions, validate_build_options

    model = onnx.load(str(trt_quantized.out))
    assert qdq_problems(model) == []  # every zero point int8 and 0: what TensorRT takes
    inits = {i.name: i for i in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node
           if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zps and all(z.data_type == onnx.TensorProto.INT8 for z in zps)
    assert all(not numpy_helper.to_array(z).any() for z in zps)
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and numpy_helper.to_array(inits[n.input[1]]).size > 1]
    assert per_channel  # weights: one scale per output channel
    q = read_card(trt_quantized.out).provenance["quantization"]
    assert q["target"] == "tensorrt" and q["activations"] == "int8 symmetric"
    assert q["float_stem_nodes"] > 0
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert not any(i.endswith("DequantizeLinear") for i in first_conv.input)  # stem float
    # a Q/DQ model TensorRT builds from its own scales: int8, no calibration data
    assert validate_build_options(trt_quantized.out, BuildOptions(precision="int8")).calib_data \
        is None
    fp32, int8 = Segmenter(open_engine(tiny_model)), Segmenter(open_engine(trt_quantized.out))
    for path in list_frames(camvid_dir / "val", 3):
        rgb = read_rgb(path)
        assert np.mean(fp32(rgb).labels == int8(rgb).labels) >= MIN_AGREEMENT


def test_shipped_tensorrt_int8_model_is_within_a_point_of_fp32_on_val(camvid_dir: Path
                                                                      ) -> None:
    """models/camvid.trt-int8.onnx (`seg-ros quantize models/camvid.onnx --calib-data
    .../camvid/train --target tensorrt`): measured 74.92 vs 75.64 % mIoU on all 101 val
    frames; the first 40 here."""
    from seg_ros.cli.eval import evaluate_model
    from seg_ros.engines.tensorrt.graph import qdq_problems

    assert qdq_problems(onnx.load(str(SHIPPED_TRT))) == []
    fp32, int8 = (evaluate_model(m, camvid_dir.parent / "camvid", "val", "onnxruntime",
                                 limit=40, progress=False) for m in (SHIPPED, SHIPPED_TRT))
    assert fp32["miou"] - int8["miou"] <= 0.01, (fp32["miou"], int8["miou"])


def test_fp16_graph_keeps_io_and_tail_fp32_and_agrees(tmp_path: Path, camvid_dir: Path,
                                                      capsys) -> None:
    """`seg-ros quantize MODEL --target fp16`: the graph a strongly typed TensorRT builds.
    Measured on all 101 CamVid val frames: 99.985 % of pixels keep their fp32 label."""
    out = tmp_path / "camvid.fp16.onnx"
    assert main(["quantize", str(SHIPPED), "--target", "fp16", "--out", str(out)]) == 0
    assert "kept fp32: /ArgMax" in capsys.readouterr().out
    model = onnx.load(str(out))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io == {"input": onnx.TensorProto.FLOAT, "labels": onnx.TensorProto.UINT8,
                  "confidence": onnx.TensorProto.FLOAT}
    assert read_card(out).provenance["precision"] == "fp16"
    assert out.stat().st_size < 0.6 * SHIPPED.stat().st_size
    fp32, fp16 = Segmenter(open_engine(SHIPPED)), Segmenter(open_engine(out))
    same = total = 0
    for path in list_frames(camvid_dir / "val", 10):
        rgb = read_rgb(path)
        a, b = fp32(rgb), fp16(rgb)
        same, total = same + int((a.labels == b.labels).sum()), total + a.labels.size
        assert a.confidence is not None and b.confidence is not None
        assert np.abs(a.confidence.astype(int) - b.confidence).mean() < 1  # of 255
    assert same / total >= 0.995, same / total


def test_quantize_cli_targets_name_their_needs(tiny_model: Path, tmp_path: Path,
                                               capsys) -> None:
    assert main(["quantize", str(tiny_model), "--target", "tensorrt"]) == 2
    assert "--target tensorrt needs --calib-data" in capsys.readouterr().err
    assert main(["quantize", str(tiny_model), "--target", "fp16", "--calib-data", "x"]) == 2
    assert "drop it with --target fp16" in capsys.readouterr().err
    assert main(["quantize", str(tiny_model), "--target", "tensorrt", "--calib-data", "x",
                 "--float-convs", "-1"]) == 2
    assert "--float-convs -1 must be >= 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--target 'gpu'"):
        quantize_onnx(tiny_model, tmp_path, tmp_path / "o.onnx", target="gpu")
