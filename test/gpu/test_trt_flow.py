"""The TensorRT build and engine code paths run end to end against a stand-in ``tensorrt``
module (test/fake_tensorrt.py) and host memory in place of CUDA buffers: no TensorRT and no
GPU exist here. What is real: the shipped ONNX model and its int32-label copy, CamVid frames,
the calibration reader, the engine cache and sidecars, the Segmenter, onnxruntime computing
the "engine" outputs. What this proves is that the orchestration -- device before builder,
flags, profiles, the calibrator, return-value checks, DLA, buffers bound by address, the stream
handle -- does what the code says; whether TensorRT agrees is for ``make gpu-check``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import fake_tensorrt
import numpy as np
import onnx
import pytest
from trt_stand_in import HostCuda

import seg_ros.engines.tensorrt.build as trt_build
import seg_ros.engines.tensorrt.engine as trt_engine
import seg_ros.engines.tensorrt.options as trt_options
from seg_ros.engines import open_engine
from seg_ros.engines.tensorrt.cache import PROVENANCE_KEY
from seg_ros.engines.tensorrt.options import BuildOptions
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import read_sidecar
from seg_ros.segmenter import Segmenter

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "camvid.onnx"


def _open_trt(model: Path, device: str, **options: Any) -> trt_engine.TensorRTEngine:
    """``open_engine`` as the node calls it, for a test that reads the TensorRT engine's own
    attributes (its plan path, its batch limit)."""
    engine = open_engine(model, "tensorrt", device, **options)
    assert isinstance(engine, trt_engine.TensorRTEngine)
    return engine


def test_fp16_engine_from_onnx_builds_once_runs_and_agrees(fake_trt, tmp_path: Path,
                                                           camvid_frame) -> None:
    logs: list[str] = []
    engine = _open_trt(SHIPPED, "cuda:1", engine_cache_dir=str(tmp_path),
                       log=logs.append)
    assert fake_trt["builder_device"] == 1  # device 1 selected before the builder existed
    assert fake_trt["flags"] == ["FP16"] and fake_trt["profiles"] == 0  # static input
    parsed = onnx.load_from_string(fake_trt["parsed_bytes"])
    assert [o.type.tensor_type.elem_type for o in parsed.graph.output if o.name == "labels"] \
        == [onnx.TensorProto.INT32]
    assert engine.describe() == "tensorrt fp16 on Fake GPU cuda:1 (sm 8.7)"
    built = read_sidecar(engine.path).provenance[PROVENANCE_KEY]
    assert built["precision_path"] == "fp16" and built["gpu_name"] == "Fake GPU"
    assert len(list(tmp_path.glob("timing.*.cache"))) == 1
    got = Segmenter(engine)(camvid_frame[0])
    ref = Segmenter(open_engine(SHIPPED, "onnxruntime"))(camvid_frame[0])
    assert fake_trt["stream"] == HostCuda.stream
    np.testing.assert_array_equal(got.labels, ref.labels)  # int32 labels, same classes
    np.testing.assert_array_equal(got.confidence, ref.confidence)
    fake_trt.pop("flags")
    again = _open_trt(SHIPPED, "cuda:1", engine_cache_dir=str(tmp_path),
                      log=logs.append)
    assert again.path == engine.path and "flags" not in fake_trt  # no second build
    assert any("cache hit" in m for m in logs) and any("built " in m for m in logs)


def _calib_folder(tmp_path: Path, camvid_dir: Path, broken: bool) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for src in sorted((camvid_dir / "train").iterdir())[:3]:
        (folder / src.name).symlink_to(src)  # the dataset stays where it is
    if broken:
        (folder / "zz_broken.png").write_bytes(b"not a png")
    return folder


def test_int8_calibration_runs_and_is_recorded(fake_trt, tmp_path: Path,
                                               camvid_dir: Path) -> None:
    calib = _calib_folder(tmp_path, camvid_dir, broken=False)
    engine = _open_trt(SHIPPED, "cuda", engine_cache_dir=str(tmp_path / "c"),
                       precision="int8", calib_data=str(calib), log=lambda s: None)
    assert fake_trt["calibration_batches"] == 3 and fake_trt["flags"] == ["INT8", "FP16"]
    built = read_sidecar(engine.path).provenance[PROVENANCE_KEY]
    assert built["calib_frames"] == 3 and "implicit calibration" in built["precision_path"]
    assert list((tmp_path / "c").glob("*.calib"))  # the calibration cache for next time


def test_a_broken_calibration_frame_fails_the_build(fake_trt, tmp_path: Path,
                                                    camvid_dir: Path) -> None:
    calib = _calib_folder(tmp_path, camvid_dir, broken=True)
    with pytest.raises(EngineError, match="stopped at batch 4 .*zz_broken.png"):
        open_engine(SHIPPED, "tensorrt", "cuda", engine_cache_dir=str(tmp_path / "c"),
                    precision="int8", calib_data=str(calib), log=lambda s: None)
    assert not list((tmp_path / "c").glob("*.engine"))


def test_dla_core_is_built_for_and_set_before_loading(fake_trt, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_options, "is_jetson", lambda root="/": True)
    opts = BuildOptions(precision="fp16", dla_core=1, out=tmp_path / "m.engine")
    with pytest.raises(EngineError, match="no DLA cores: drop --dla-core"):
        trt_build.build_engine(SHIPPED, opts, log=lambda s: None)
    monkeypatch.setattr(fake_tensorrt, "DLA_CORES", 2)
    out = trt_build.build_engine(SHIPPED, opts, log=lambda s: None)
    assert fake_trt["dla"] == ("DLA", 1) and fake_trt["flags"] == ["FP16", "GPU_FALLBACK"]
    engine = open_engine(out, "tensorrt", "cuda")
    assert fake_trt["runtime_dla_core"] == 1 and "DLA 1" in engine.describe()
    with pytest.raises(ConfigError, match="DLA cores have no fp32"):
        trt_build.build_engine(SHIPPED, BuildOptions(precision="fp32", dla_core=0))


def test_dynamic_batch_gets_a_profile(fake_trt, tmp_path: Path) -> None:
    model = onnx.load(str(SHIPPED))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # batch -1
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    engine = open_engine(path, "tensorrt", "cuda", engine_cache_dir=str(tmp_path),
                         log=lambda s: None)
    assert fake_trt["profiles"] == 1 and engine.input_shape[0] == 1


def test_batch_engine_runs_several_cameras_in_one_call(fake_trt, tmp_path: Path) -> None:
    """build-engine --batch 3 on a dynamic-batch export: a profile of 1..3 frames, recorded in
    the sidecar; the engine then takes 1, 2 or 3 frames per call and each frame's labels equal
    a single call's."""
    from seg_ros.live import camvid_frames, make_tiny_model

    model = make_tiny_model(tmp_path / "dyn.onnx", batch=0)
    out = trt_build.build_engine(model, BuildOptions(out=tmp_path / "dyn.engine", max_batch=3))
    assert read_sidecar(out).provenance[PROVENANCE_KEY]["max_batch"] == 3
    engine = _open_trt(out, "cuda")
    assert engine.max_batch == 3
    seg = Segmenter(engine)
    frames = camvid_frames(3, (320, 240))
    single = [seg(f).labels for f in frames]
    for n in (3, 2, 3, 1):
        per_frame = seg.infer_batch(seg.preprocess_batch(frames[:n]), want_confidence=False)
        for f, outputs, ref in zip(frames[:n], per_frame, single):
            np.testing.assert_array_equal(seg.labels(outputs, f.shape[:2]), ref)


def test_batch_profile_spans_one_to_n_frames() -> None:
    from seg_ros.engines.tensorrt.plan import profile_shapes

    assert profile_shapes((-1, 3, 288, 384), (288, 384), 4) == (
        (1, 3, 288, 384), (4, 3, 288, 384), (4, 3, 288, 384))
    assert profile_shapes((-1, 3, 288, 384), (288, 384)) == ((1, 3, 288, 384),) * 3
    assert profile_shapes((1, 3, 288, 384), (288, 384), 4) is None


def test_batch_build_of_a_fixed_batch_export_names_the_fix(fake_trt, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="export --batch dynamic"):
        trt_build.build_engine(SHIPPED, BuildOptions(out=tmp_path / "b.engine", max_batch=3))
    with pytest.raises(ConfigError, match="--batch 0 must be >= 1"):
        trt_options.validate_build_options(SHIPPED, BuildOptions(max_batch=0))


# --- TensorRT 11.x: strongly typed networks, the precision is the graph's --------------------


@pytest.fixture
def trt11(fake_trt, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt.module("11.4.0"))
    return fake_trt


def test_trt11_fp16_builds_an_fp16_graph_whose_labels_agree(trt11, tmp_path: Path,
                                                           camvid_frame) -> None:
    logs: list[str] = []
    engine = _open_trt(SHIPPED, "cuda", engine_cache_dir=str(tmp_path),
                       log=logs.append)
    assert trt11["flags"] == [] and trt11["strongly_typed"] and trt11["network_flags"] == 0
    parsed = onnx.load_from_string(trt11["parsed_bytes"])
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in parsed.graph.initializer)
    io = {v.name: v.type.tensor_type.elem_type for v in [*parsed.graph.input,
                                                           *parsed.graph.output]}
    assert io == {"input": onnx.TensorProto.FLOAT, "labels": onnx.TensorProto.INT32,
                  "confidence": onnx.TensorProto.FLOAT}  # I/O fp32, labels int32 for TensorRT
    built = read_sidecar(engine.path).provenance[PROVENANCE_KEY]
    assert built["precision"] == "fp16" and "fp16 graph" in built["precision_path"]
    assert any("parsed as an fp16 graph" in m for m in logs)
    got = Segmenter(engine)(camvid_frame[0])
    ref = Segmenter(open_engine(SHIPPED, "onnxruntime"))(camvid_frame[0])
    assert np.mean(got.labels == ref.labels) >= 0.995
    assert got.confidence is not None and ref.confidence is not None
    assert np.abs(got.confidence.astype(int) - ref.confidence).mean() < 1  # of 255


def test_trt11_int8_from_a_float_model_quantizes_qdq_without_calibrator(
        trt11, tmp_path: Path, camvid_dir: Path) -> None:
    calib = _calib_folder(tmp_path, camvid_dir, broken=False)
    logs: list[str] = []
    engine = _open_trt(SHIPPED, "cuda", engine_cache_dir=str(tmp_path / "c"),
                       precision="int8", calib_data=str(calib), log=logs.append)
    assert "calibration_batches" not in trt11 and trt11["flags"] == []
    parsed = onnx.load_from_string(trt11["parsed_bytes"])
    from seg_ros.engines.tensorrt.graph import has_qdq, qdq_problems

    assert has_qdq(parsed) and qdq_problems(parsed) == []  # int8, zero points 0
    assert "int8 symmetric Q/DQ graph" in \
        read_sidecar(engine.path).provenance[PROVENANCE_KEY]["precision_path"]
    assert any("--target tensorrt" in m for m in logs)


def test_trt11_has_no_calibrator_and_the_cpu_int8_model_is_refused(trt11, tmp_path: Path
                                                                   ) -> None:
    trt = sys.modules["tensorrt"]
    assert not hasattr(trt, "IInt8EntropyCalibrator2") and not hasattr(trt.BuilderFlag, "FP16")
    with pytest.raises(ConfigError, match="TensorRT does not take"):
        trt_build.build_engine(SHIPPED.with_name("camvid.int8.onnx"),
                               BuildOptions(precision="int8", out=tmp_path / "x.engine"))


# --- every failure the real API reports: one EngineError line naming cause and fix -----------

FAILURES = [
    ("builder", "could not create its Builder .*factory function returned nullptr"),
    ("parser", "could not create its ONNX parser .*nullptr"),
    ("parse", r"(?s)ONNX parser rejected .*node 0 \(.*\): UNSUPPORTED_NODE No importer"),
    ("build", "TensorRT failed to build camvid.onnx at fp16"),
    ("runtime", "could not create its Runtime .*nullptr.*libraries match"),
    ("deserialize", "could not deserialize .*rebuild it with `seg-ros build-engine`"),
    ("context", "could not create an execution context"),
]


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
@pytest.mark.parametrize("failure,message", FAILURES, ids=[f for f, _ in FAILURES])
def test_each_tensorrt_failure_is_one_engine_error_line(fake_trt, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        version: str, failure: str,
                                                        message: str) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt.module(version))
    monkeypatch.setattr(fake_tensorrt, "FAIL", {failure})
    with pytest.raises(EngineError, match=message) as err:
        open_engine(SHIPPED, "tensorrt", "cuda", engine_cache_dir=str(tmp_path),
                    log=lambda s: None)
    if failure != "parse":  # the parser's message lists one error per line by design
        assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("*.engine")) or failure in ("runtime", "deserialize",
                                                               "context")


def test_execute_false_is_an_engine_error_and_the_next_frame_runs(fake_trt, tmp_path: Path,
                                                                  monkeypatch) -> None:
    engine = open_engine(SHIPPED, "tensorrt", "cuda", engine_cache_dir=str(tmp_path),
                         log=lambda s: None)
    batch = np.zeros(engine.input_shape, np.float32)
    monkeypatch.setattr(fake_tensorrt, "FAIL", {"execute"})
    with pytest.raises(EngineError, match="TensorRT execution of .* failed"):
        engine.infer(batch)
    monkeypatch.setattr(fake_tensorrt, "FAIL", set())
    assert engine.infer(batch)["labels"].shape == (1, *engine.input_shape[2:])


def test_refused_calibration_profile_is_an_engine_error(fake_trt, tmp_path: Path,
                                                        camvid_dir: Path, monkeypatch) -> None:
    model = onnx.load(str(SHIPPED))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # a profile is needed
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    monkeypatch.setattr(fake_tensorrt, "FAIL", {"calibration_profile"})
    calib = _calib_folder(tmp_path, camvid_dir, broken=False)
    with pytest.raises(EngineError, match="refused the calibration profile.*--target tensorrt"):
        trt_build.build_engine(path, BuildOptions(precision="int8", calib_data=str(calib),
                                                  out=tmp_path / "d.engine"),
                               log=lambda s: None)


def test_build_engine_cli_failure_is_exit_2_one_line(fake_trt, tmp_path: Path, monkeypatch,
                                                     capsys) -> None:
    from seg_ros.cli import main

    monkeypatch.setattr(fake_tensorrt, "FAIL", {"builder"})
    assert main(["build-engine", str(SHIPPED), "--out", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "could not create its Builder" in err
