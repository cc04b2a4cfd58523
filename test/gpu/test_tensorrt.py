"""TensorRT backend and engine builder: the GPU-free logic, tested for real on any machine.

The GPU path (parse, build, deserialize, execute) needs tensorrt + a CUDA GPU; where those are
missing the tests check that every entry point fails with one line naming the missing piece and
the onnxruntime fallback. The ``ensure_engine`` test passes a builder function instead of
TensorRT's (which cannot run here) to check the caching policy itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seg_ros.cli import main
from seg_ros.engines import open_engine
from seg_ros.engines.calibration import CalibrationBatches, list_frames, preprocessor, read_rgb
from seg_ros.engines.gpu import GpuInfo, parse_device, tensorrt_usable
from seg_ros.engines.tensorrt.bindings import (
    TensorSpec,
    numpy_dtype,
    tensor_specs,
    trt_dtype_name,
    trt_name_of,
    validate_specs,
)
from seg_ros.engines.tensorrt.build import ParserIssue, format_parser_errors
from seg_ros.engines.tensorrt.cache import (
    PROVENANCE_KEY,
    build_provenance,
    check_engine_compat,
    engine_cache_key,
    engine_cache_path,
    ensure_engine,
    find_cached_engine,
)
from seg_ros.engines.tensorrt.calibrator import read_calibration_cache, write_calibration_cache
from seg_ros.engines.tensorrt.options import (
    BuildOptions,
    default_engine_path,
    is_jetson,
    validate_build_options,
)
from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import camvid_card, read_card, write_sidecar

ORIN = GpuInfo("Orin", "8.7")
no_trt = pytest.mark.skipif(tensorrt_usable(), reason="this machine has TensorRT and a GPU")


# --- dtype mapping ----------------------------------------------------------------------------

def test_dtype_mapping_round_trips_by_name() -> None:
    for name, dt in [("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8),
                     ("INT32", np.int32), ("INT64", np.int64), ("UINT8", np.uint8),
                     ("BOOL", np.bool_)]:
        assert numpy_dtype(name) == np.dtype(dt)
        assert numpy_dtype(f"DataType.{name}") == np.dtype(dt)  # str() of the trt enum
        assert trt_name_of(dt) == name

    class FakeEnum:  # what trt.DataType members look like: a .name attribute
        name = "HALF"

    assert trt_dtype_name(FakeEnum()) == "HALF"
    for exotic in ("BF16", "FP8", "INT4"):
        with pytest.raises(EngineError, match="float32"):
            numpy_dtype(exotic)
    with pytest.raises(EngineError):
        trt_name_of(np.complex64)


# --- I/O specs --------------------------------------------------------------------------------

def _specs(h: int = 180, w: int = 240, labels: str = "labels", n: int = 1) -> list[TensorSpec]:
    return [TensorSpec("input", True, np.dtype(np.float32), (n, 3, h, w)),
            TensorSpec(labels, False, np.dtype(np.uint8), (n, h, w)),
            TensorSpec("confidence", False, np.dtype(np.float32), (n, h, w))]


def test_validate_specs_accepts_the_export_contract() -> None:
    card = camvid_card(input_size=(180, 240))
    inp, outs = validate_specs(_specs(), card, "m.engine")
    assert inp.name == "input" and [o.name for o in outs] == ["labels", "confidence"]
    validate_specs(_specs(n=-1), card, "m.engine")  # dynamic batch is set to 1 at load


def test_validate_specs_refuses_mismatches() -> None:
    card = camvid_card(input_size=(180, 240))
    with pytest.raises(EngineError, match=r"\(1, 3, 180, 240\).*input_size"):
        validate_specs(_specs(h=360, w=480), card, "m.engine")
    with pytest.raises(EngineError, match="'labels'"):
        validate_specs(_specs(labels="out0"), card, "m.engine")
    with pytest.raises(EngineError, match="exactly one"):
        validate_specs([*_specs(), TensorSpec("x2", True, np.dtype(np.float32), (1,))], card, "m")
    bad_conf = [*_specs()[:2], TensorSpec("confidence", False, np.dtype(np.int32), (1, 180, 240))]
    with pytest.raises(EngineError, match="confidence"):
        validate_specs(bad_conf, card, "m")
    logits_card = camvid_card(input_size=(180, 240), output_kind="logits")
    logits = [_specs()[0], TensorSpec("logits", False, np.dtype(np.float32), (1, 12, 90, 120))]
    with pytest.raises(EngineError, match="outputs 12 classes but its card lists 11"):
        validate_specs(logits, logits_card, "m")
    ok = [_specs()[0], TensorSpec("logits", False, np.dtype(np.float32), (1, 11, 90, 120))]
    validate_specs(ok, logits_card, "m")
    nhwc = camvid_card(input_size=(180, 240), output_kind="probabilities", layout="nhwc",
                       output_name="probs")  # any output convention the card can describe
    validate_specs([_specs()[0], TensorSpec("probs", False, np.dtype(np.float16),
                                            (-1, 90, 120, 11))], nhwc, "m")


def test_tensor_specs_reads_the_named_tensor_api() -> None:
    class Engine:  # the TRT 10 ICudaEngine accessors tensor_specs uses (TRT cannot run here)
        num_io_tensors = 2
        names = ("input", "labels")

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_mode(self, name: str) -> str:
            return "TensorIOMode.INPUT" if name == "input" else "TensorIOMode.OUTPUT"

        def get_tensor_dtype(self, name: str) -> str:
            return "DataType.FLOAT" if name == "input" else "DataType.UINT8"

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (1, 3, 8, 8) if name == "input" else (1, 8, 8)

    specs = tensor_specs(Engine())
    assert specs == [TensorSpec("input", True, np.dtype(np.float32), (1, 3, 8, 8)),
                     TensorSpec("labels", False, np.dtype(np.uint8), (1, 8, 8))]


# --- cache key, cache path, compatibility -----------------------------------------------------

def test_engine_cache_key_changes_with_every_component(tmp_path: Path) -> None:
    base = engine_cache_key("a" * 64, "fp16", ORIN, "10.3.0")
    assert base == engine_cache_key("a" * 64, "fp16", ORIN, "10.3.0") and len(base) == 16
    variants = [
        engine_cache_key("b" * 64, "fp16", ORIN, "10.3.0"),
        engine_cache_key("a" * 64, "int8", ORIN, "10.3.0"),
        engine_cache_key("a" * 64, "fp16", GpuInfo("Orin", "8.6"), "10.3.0"),
        engine_cache_key("a" * 64, "fp16", GpuInfo("NVIDIA H100", "8.7"), "10.3.0"),
        engine_cache_key("a" * 64, "fp16", ORIN, "10.7.0"),
        engine_cache_key("a" * 64, "fp16", ORIN, "10.3.0", calib="train"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    with pytest.raises(EngineError, match="fp32, fp16, int8"):
        engine_cache_key("a" * 64, "bf16", ORIN, "10.3.0")
    path = engine_cache_path(tmp_path, "models/camvid.onnx", "fp16", base)
    assert path == tmp_path / f"camvid.fp16.{base}.engine"


def _engine_card(gpu: GpuInfo = ORIN, trt: str = "10.3.0", key: str = "k"):
    return camvid_card().with_provenance(
        **{PROVENANCE_KEY: build_provenance(gpu, trt, "fp16", "a" * 64, key)})


def test_check_engine_compat() -> None:
    check_engine_compat(_engine_card(), ORIN, "10.3.0", "m.engine")  # same: fine
    for gpu, trt, what in [(GpuInfo("Orin", "8.6"), "10.3.0", "compute capability 8.7"),
                           (GpuInfo("NVIDIA H100", "8.7"), "10.3.0", "GPU 'Orin'"),
                           (ORIN, "10.7.0", "TensorRT 10.3.0")]:
        with pytest.raises(EngineError, match=what) as e:
            check_engine_compat(_engine_card(), gpu, trt, "m.engine")
        assert "seg-ros build-engine" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EngineError, match="records no TensorRT build.*seg-ros build-engine"):
        check_engine_compat(camvid_card(), ORIN, "10.3.0", "m.engine")


def test_ensure_engine_builds_once_and_rebuilds_on_change(tiny_model: Path,
                                                          tmp_path: Path) -> None:
    built: list[Path] = []
    timing: list[Path] = []

    def fake_build(onnx: Path, out: Path, key: str, timing_cache: Path) -> Path:
        # stands in for TensorRT only (it cannot run here): the caching policy is under test
        out.write_bytes(b"engine")
        facts = build_provenance(ORIN, "10.3.0", "fp16", "x", key)
        write_sidecar(read_card(onnx).with_provenance(**{PROVENANCE_KEY: facts}), out)
        built.append(out)
        timing.append(timing_cache)
        return out

    logs: list[str] = []
    kw: dict[str, Any] = {"build": fake_build, "log": logs.append}
    first = ensure_engine(tiny_model, tmp_path, "fp16", ORIN, "10.3.0", **kw)
    again = ensure_engine(tiny_model, tmp_path, "fp16", ORIN, "10.3.0", **kw)
    assert first == again and len(built) == 1
    assert any("building" in m for m in logs) and any(" in " in m and " s" in m for m in logs)
    assert any("cache hit" in m for m in logs)
    ensure_engine(tiny_model, tmp_path, "fp32", ORIN, "10.3.0", **kw)  # new precision
    ensure_engine(tiny_model, tmp_path, "fp16", GpuInfo("Orin", "8.6"), "10.3.0", **kw)  # new GPU
    ensure_engine(tiny_model, tmp_path, "fp16", ORIN, "10.3.0", extra={"calib": "train"}, **kw)
    assert len(built) == 4 and len(set(built)) == 4
    # timing caches: one per GPU + TensorRT version, not one file for all
    assert timing[0] == timing[1] != timing[2] and timing[0].parent == tmp_path
    # a sidecar recording another key is not trusted
    assert find_cached_engine(first, "other") is None
    assert find_cached_engine(first, first.name.split(".")[-2]) == first


# --- calibration frames -----------------------------------------------------------------------

def test_calibration_batches_use_segmenter_preprocess(camvid_dir: Path) -> None:
    card = camvid_card(input_size=(180, 240))
    frames = list_frames(camvid_dir / "train", 5)
    assert len(frames) == 5 and frames == sorted(frames)
    batches = CalibrationBatches(frames, card, batch_size=2)  # 5 frames -> 2 full batches
    got = list(batches)
    assert len(batches) == len(got) == 2 and batches.frames_used == 4
    assert all(b.shape == (2, 3, 180, 240) and b.dtype == np.float32 for b in got)
    assert all(b.flags.c_contiguous for b in got)
    pre = preprocessor(card)
    for i, path in enumerate(frames[:4]):
        np.testing.assert_array_equal(got[i // 2][i % 2], pre.preprocess(read_rgb(path))[0])
    padded = list(CalibrationBatches(frames, card, batch_size=2, drop_last=False))
    assert len(padded) == 3  # last batch = frame 4 + frame 0 again
    np.testing.assert_array_equal(padded[2][1], got[0][0])
    with pytest.raises(ConfigError, match="cannot fill one batch"):
        CalibrationBatches(frames[:1], card, batch_size=2)


def test_list_frames_errors_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--calib-data .* is not a folder"):
        list_frames(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no images"):
        list_frames(tmp_path)


def test_calibration_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.calib"
    assert read_calibration_cache(path) is None and read_calibration_cache(None) is None
    write_calibration_cache(path, memoryview(b"TRT-10-EntropyCalibration2\ninput: 3c010a14\n"))
    cached = read_calibration_cache(path)
    assert cached is not None and cached.startswith(b"TRT-10-EntropyCalibration2")
    assert not list(path.parent.glob("*.tmp"))


# --- build arguments --------------------------------------------------------------------------

def test_validate_build_options(tiny_model: Path, camvid_dir: Path, tmp_path: Path) -> None:
    opts = validate_build_options(tiny_model, BuildOptions(precision="fp16"))
    assert opts.out == default_engine_path(tiny_model, "fp16") == \
        tiny_model.with_name("tiny.fp16.engine")
    with pytest.raises(ConfigError, match="--calib-data"):
        validate_build_options(tiny_model, BuildOptions(precision="int8"))
    with pytest.raises(ConfigError, match="only used with --precision int8"):
        validate_build_options(tiny_model, BuildOptions(calib_data=camvid_dir / "train"))
    int8 = validate_build_options(tiny_model, BuildOptions(
        precision="int8", calib_data=camvid_dir / "train", out=tmp_path / "t.engine"))
    assert int8.calib_cache is not None and int8.calib_cache.suffix == ".calib"
    with pytest.raises(ConfigError, match="--dla-core 0 needs a Jetson"):
        validate_build_options(tiny_model, BuildOptions(dla_core=0), jetson=False)
    validate_build_options(tiny_model, BuildOptions(dla_core=0), jetson=True)
    with pytest.raises(ConfigError, match="DLA cores have no fp32"):  # DLA: fp16 / int8 only
        validate_build_options(tiny_model, BuildOptions(precision="fp32", dla_core=0),
                               jetson=True)
    for bad, match in [(BuildOptions(precision="bf16"), "--precision"),
                       (BuildOptions(workspace_mb=0), "--workspace-mb"),
                       (BuildOptions(dla_core=-1), "--dla-core -1"),
                       (BuildOptions(out=tmp_path / "x.onnx"), ".engine or .plan")]:
        with pytest.raises(ConfigError, match=match):
            validate_build_options(tiny_model, bad, jetson=True)
    with pytest.raises(ConfigError, match="not an .onnx"):
        validate_build_options(tmp_path / "m.engine", BuildOptions())


def test_is_jetson_reads_l4t_markers(tmp_path: Path) -> None:
    assert not is_jetson(tmp_path)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson AGX Orin Developer Kit\0")
    assert is_jetson(tmp_path)


def test_parser_errors_are_listed_per_node() -> None:
    msg = format_parser_errors(Path("m.onnx"), [
        ParserIssue("UNSUPPORTED_NODE", "no importer for op Foo", 7, "/foo", "Foo"),
        ParserIssue("INVALID_GRAPH", "bad initializer"),
    ])
    assert "node 7 (Foo '/foo'): UNSUPPORTED_NODE no importer for op Foo" in msg
    assert "graph: INVALID_GRAPH bad initializer" in msg and "seg-ros export" in msg


def test_parse_device() -> None:
    assert parse_device("cuda") == 0 and parse_device("cuda:1") == 1
    with pytest.raises(EngineError, match="backend 'onnxruntime'"):
        parse_device("cpu:0")


# --- "not available here" paths ---------------------------------------------------------------

@no_trt
def test_open_engine_tensorrt_names_missing_piece_and_fallback(tiny_model: Path,
                                                               tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    for path in (tiny_model, engine):
        with pytest.raises(EngineError) as e:
            open_engine(path, backend="tensorrt" if path == tiny_model else "auto")
        msg = str(e.value)
        assert "\n" not in msg and "onnxruntime" in msg
        assert "tensorrt Python package" in msg or "CUDA GPU" in msg


@no_trt
def test_build_engine_cli_exit_2_one_line(tiny_model: Path, capsys) -> None:
    assert main(["build-engine", str(tiny_model), "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "onnxruntime" in err
    assert "tensorrt Python package" in err or "CUDA GPU" in err


def test_build_engine_cli_argument_errors(tiny_model: Path, capsys) -> None:
    assert main(["build-engine", str(tiny_model), "--precision", "int8"]) == 2
    assert "--calib-data" in capsys.readouterr().err


@no_trt
def test_build_engine_subprocess_no_traceback(tiny_model: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "seg_ros.cli", "build-engine", str(tiny_model)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "onnxruntime" in r.stderr


@no_trt
def test_tensorrt_from_onnx_without_tensorrt_is_one_clear_line(tiny_model: Path,
                                                               tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="the TensorRT backend is not available") as e:
        open_engine(tiny_model, backend="tensorrt", engine_cache_dir=str(tmp_path))
    assert "\n" not in str(e.value) and "onnxruntime" in str(e.value)
    assert not list(tmp_path.iterdir())  # nothing half-built left behind
