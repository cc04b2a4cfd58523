"""The GPU path's logic, checked on a machine without a GPU.

Real where the real thing runs here: cuda-python's ``cudaStream_t`` objects and its runtime
(which reports the missing driver), onnxruntime sessions, the shipped ONNX models, CamVid
frames, the TensorRT backend failing for real because tensorrt is not installed. Stand-ins only
for what cannot run without a GPU, each said where it is used: TensorRT's builder, network and
execution context objects, and CUDA memory (a host array plays the device buffer).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cuda.bindings import runtime as cudart
from onnx import TensorProto, helper

from seg_ros.engines import open_engine
from seg_ros.engines.auto import Choice, onnx_choice, open_onnx_auto
from seg_ros.engines.calibration import CalibrationBatches, list_frames
from seg_ros.engines.gpu import (
    CudaRuntimeFacts,
    GpuInfo,
    cuda_device_count,
    runtime_problem,
    tensorrt_problems,
)
from seg_ros.engines.onnxruntime import (
    make_cache_dirs,
    provider_report,
    providers_for,
    session_log_level,
    shadowing_hint,
    tensorrt_provider_options,
)
from seg_ros.engines.tensorrt.bindings import concrete_shape
from seg_ros.engines.tensorrt.build import add_profile, open_builder
from seg_ros.engines.tensorrt.cache import timing_cache_path, write_bytes_atomic
from seg_ros.engines.tensorrt.calibrator import CalibrationFeed
from seg_ros.engines.tensorrt.cuda_buffers import Buffer
from seg_ros.engines.tensorrt.cuda_runtime import CudaPythonRuntime, stream_handle
from seg_ros.engines.tensorrt.engine import TensorRTEngine
from seg_ros.engines.tensorrt.graph import has_qdq, labels_to_int32, qdq_problems, tensorrt_onnx
from seg_ros.engines.tensorrt.options import BuildOptions, check_dla_core, validate_build_options
from seg_ros.engines.tensorrt.plan import TrtCaps, precision_plan, profile_shapes
from seg_ros.errors import ConfigError, EngineError
from seg_ros.frames import read_rgb
from seg_ros.model_card import camvid_card
from seg_ros.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "camvid.onnx"
SHIPPED_INT8 = ROOT / "models" / "camvid.int8.onnx"
needs_no_gpu = pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")


# --- 1. the stream handed to execute_async_v3 ----------------------------------------------

def test_stream_handle_is_the_cudastream_value_not_the_wrapper_address() -> None:
    stream = cudart.cudaStream_t(init_value=0x7F00_1234)  # a real cuda.bindings object
    assert stream_handle(stream) == 0x7F00_1234
    assert stream_handle(stream) != int(stream.getPtr())  # getPtr(): the wrapper's storage


@needs_no_gpu
def test_cuda_python_runtime_without_driver_is_one_clear_line() -> None:
    with pytest.raises(EngineError, match="CUDA error .* device 0: check the GPU") as e:
        CudaPythonRuntime(0)  # the real bindings: cudaSetDevice reports the missing driver
    assert "\n" not in str(e.value)


# --- 3. device selection: before the builder, and per worker thread -------------------------

def test_device_is_selected_before_the_builder_exists() -> None:
    order: list[str] = []

    def make_builder(logger: object) -> str:  # TensorRT stand-in: it cannot run here
        order.append("trt.Builder")
        return "builder"

    def select(index: int) -> str:
        order.append(f"select cuda:{index}")
        return "rt"

    _cuda, builder = open_builder(SimpleNamespace(Builder=make_builder), None, 1, runtime=select)
    assert order == ["select cuda:1", "trt.Builder"] and builder == "builder"


class _RecordingRt:
    """cuda.bindings.runtime stand-in for the calls that need a GPU: records cudaSetDevice."""

    def __init__(self) -> None:
        self.set_device: list[tuple[str, int]] = []

    def cudaSetDevice(self, index: int) -> tuple[int]:  # the CUDA runtime name
        self.set_device.append((threading.current_thread().name, index))
        return (0,)


def test_every_thread_selects_the_engine_device_once() -> None:
    runtime = CudaPythonRuntime.__new__(CudaPythonRuntime)
    runtime.rt, runtime.device_index, runtime._threads = _RecordingRt(), 2, threading.local()
    runtime.activate()
    runtime.activate()
    workers = [threading.Thread(target=runtime.activate, name=f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
        w.join()
    assert sorted(runtime.rt.set_device) == [("MainThread", 2), ("w0", 2), ("w1", 2)]


class _HostCuda:
    """CUDA runtime stand-in (no GPU here): host arrays play the device buffers; records the
    order of the calls the engine makes."""

    stream = 0x51

    def __init__(self) -> None:
        self.calls: list[str] = []

    def activate(self) -> None:
        self.calls.append("activate")

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Buffer:
        return Buffer(np.zeros(shape, dtype), 0)

    def upload(self, buf: Buffer) -> None:
        self.calls.append("upload")

    def download(self, buf: Buffer) -> None:
        self.calls.append("download")

    def synchronize(self) -> None:
        self.calls.append("synchronize")


def test_infer_selects_the_device_then_runs_on_the_stream_handle() -> None:
    engine = TensorRTEngine.__new__(TensorRTEngine)
    cuda = _HostCuda()
    stream_seen: list[int] = []
    engine.cuda, engine.path, engine.input_name = cuda, Path("m.engine"), "input"
    engine.output_names = ["labels"]
    engine._buf = {"input": cuda.alloc((1, 3, 2, 2), np.dtype(np.float32)),
                   "labels": cuda.alloc((1, 2, 2), np.dtype(np.int32))}

    def execute(stream: int) -> bool:
        stream_seen.append(stream)
        cuda.calls.append("execute")
        return True

    engine.context = SimpleNamespace(execute_async_v3=execute)  # TensorRT context stand-in
    out = engine.infer(np.ones((1, 3, 2, 2), np.float32))
    assert cuda.calls == ["activate", "upload", "execute", "download", "synchronize"]
    assert stream_seen == [0x51] and out["labels"].shape == (1, 2, 2)
    engine.context = SimpleNamespace(execute_async_v3=lambda s: False)
    with pytest.raises(EngineError, match="execution of m.engine failed"):
        engine.infer(np.ones((1, 3, 2, 2), np.float32))


# --- 4. optimisation profile for dynamic inputs ---------------------------------------------

def test_profile_shapes_for_dynamic_batch_and_size() -> None:
    size = (360, 480)
    assert profile_shapes((1, 3, 360, 480), size) is None  # static: no profile
    assert profile_shapes((-1, 3, 360, 480), size) == ((1, 3, 360, 480),) * 3
    assert profile_shapes((-1, 3, -1, -1), size) == ((1, 3, 360, 480),) * 3
    with pytest.raises(EngineError, match="not \\(N, 3, H, W\\)"):
        profile_shapes((-1, 3, 360), size)


def test_add_profile_sets_each_dynamic_input_and_checks_the_result() -> None:
    shapes: list[tuple] = []
    profile = SimpleNamespace(set_shape=lambda name, *s: shapes.append((name, *s)))
    # TensorRT network / builder / config stand-ins: they cannot be made without TensorRT
    network = SimpleNamespace(num_inputs=1, get_input=lambda i: SimpleNamespace(
        name="input", shape=(-1, 3, 360, 480)))
    builder = SimpleNamespace(create_optimization_profile=lambda: profile)
    card = camvid_card(input_size=(360, 480))
    ok = SimpleNamespace(add_optimization_profile=lambda p: 0)
    assert add_profile(builder, network, ok, card) is profile
    assert shapes == [("input", *((1, 3, 360, 480),) * 3)]
    refused = SimpleNamespace(add_optimization_profile=lambda p: -1)
    with pytest.raises(EngineError, match="refused the optimisation profile"):
        add_profile(builder, network, refused, card)
    static = SimpleNamespace(num_inputs=1, get_input=lambda i: SimpleNamespace(
        name="input", shape=(1, 3, 360, 480)))
    assert add_profile(builder, static, ok, card) is None


# --- 5. dynamic dims never reach buffer allocation ------------------------------------------

def test_concrete_shape_refuses_dynamic_dims() -> None:
    assert concrete_shape("labels", (1, 360, 480), "m.engine") == (1, 360, 480)
    with pytest.raises(EngineError, match="'labels' still has dynamic shape \\(1, -1, 480\\)"):
        concrete_shape("labels", (1, -1, 480), "m.engine")


# --- 6. timing cache keyed like the engines, written atomically -----------------------------

def test_timing_cache_is_per_gpu_and_tensorrt_version(tmp_path: Path) -> None:
    orin, h200 = GpuInfo("Orin", "8.7"), GpuInfo("NVIDIA H200", "9.0")
    paths = {timing_cache_path(tmp_path, g, v) for g in (orin, h200) for v in ("10.3", "10.7")}
    assert len(paths) == 4 and timing_cache_path(tmp_path, orin, "10.3") in paths
    target = timing_cache_path(tmp_path, orin, "10.3")
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"new timings")
    assert target.read_bytes() == b"new timings"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


# --- 7. a failing calibration batch fails the build -----------------------------------------

def test_calibration_error_is_recorded_and_raised(camvid_dir: Path, tmp_path: Path) -> None:
    frames = list_frames(camvid_dir / "train", 3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")  # a real unreadable frame in the set
    card = camvid_card(input_size=(90, 120))
    feed = CalibrationFeed(CalibrationBatches([*frames[:2], broken, frames[2]], card),
                           _HostCuda(), log=lambda s: None)
    assert feed.next_pointers() == [0] and feed.next_pointers() == [0]
    np.testing.assert_array_equal(  # the buffer holds the pre-processed second frame
        feed.buf.host[0], CalibrationBatches(frames[1:2], card).__iter__().__next__()[0])
    assert feed.next_pointers() is None  # the broken frame ends calibration ...
    assert feed.next_pointers() is None  # ... for good, as TensorRT sees it
    with pytest.raises(EngineError, match="stopped at batch 3 .*broken.png.*no engine") as e:
        feed.raise_if_failed("camvid.onnx")
    assert "\n" not in str(e.value)
    empty = CalibrationFeed(CalibrationBatches(frames[:1], card), _HostCuda(), print)
    with pytest.raises(EngineError, match="received no frames"):
        empty.raise_if_failed("camvid.onnx")
    empty.from_cache = True  # ranges read from a calibration cache: nothing to feed
    empty.raise_if_failed("camvid.onnx")


# --- 8. DLA ---------------------------------------------------------------------------------

def test_dla_core_checks() -> None:
    with pytest.raises(EngineError, match="no DLA cores: drop --dla-core"):
        check_dla_core(0, 0)
    with pytest.raises(EngineError, match="has 2 DLA cores: use 0..1"):
        check_dla_core(2, 2)
    check_dla_core(1, 2)


# --- 9. auto: TensorRT -> onnxruntime CUDA -> onnxruntime CPU -------------------------------

CUDA_EP = ["CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_EP = ["CPUExecutionProvider"]


def test_auto_chain_with_each_missing_piece() -> None:
    assert onnx_choice("cpu", [], CUDA_EP, 1, True) == Choice("tensorrt", "cuda:0")
    assert onnx_choice("cuda:1", [], CUDA_EP, 2, True) == Choice("tensorrt", "cuda:1")
    cpu_robot = onnx_choice("cpu", ["the tensorrt Python package", "a CUDA GPU"], CPU_EP, 0,
                            False)
    assert cpu_robot == Choice("onnxruntime", "cpu")  # nothing to warn about
    no_trt = onnx_choice("cpu", ["the tensorrt Python package"], CUDA_EP, 1, False)
    assert no_trt.device == "cuda:0" and no_trt.reason is not None
    assert "tensorrt Python package" in no_trt.reason
    assert "onnxruntime CUDA" in no_trt.reason
    no_runtime = onnx_choice("cpu", ["a CUDA runtime for buffers (pip install cuda-python, "
                                     "or a CUDA build of torch)"], CPU_EP, 1, True)
    assert no_runtime.device == "cpu" and no_runtime.reason is not None
    assert "cuda-python" in no_runtime.reason
    assert "install onnxruntime-gpu" in no_runtime.reason  # a GPU but a CPU onnxruntime
    no_gpu = onnx_choice("cuda", ["a CUDA GPU"], CUDA_EP, 0, True)
    assert no_gpu == Choice("onnxruntime", "cpu", no_gpu.reason) and no_gpu.reason is not None
    assert "CUDA GPU" in no_gpu.reason
    assert onnx_choice("tensorrt", ["x"], CUDA_EP, 1, True) == Choice("onnxruntime", "tensorrt")


def test_tensorrt_problems_name_each_missing_piece() -> None:
    cp13 = CudaRuntimeFacts(cuda_python="13.0.1", torch_cuda=None)
    assert tensorrt_problems(0, cp13, trt_installed=True, gpus=1, driver=13000) == []
    assert tensorrt_problems(0, cp13, trt_installed=False, gpus=0) == [
        "the tensorrt Python package", "a CUDA GPU"]
    assert tensorrt_problems(1, cp13, trt_installed=True, gpus=1) == ["CUDA GPU 1"]
    old_driver = tensorrt_problems(0, cp13, trt_installed=True, gpus=1, driver=12060)
    assert len(old_driver) == 1 and "cuda-python 13.0.1 needs a driver for CUDA 13.x" in \
        old_driver[0] and "supports 12.6" in old_driver[0]
    nothing = tensorrt_problems(0, CudaRuntimeFacts(None, None), trt_installed=True, gpus=1,
                                driver=12060)
    assert nothing == ["a CUDA runtime for buffers (pip install cuda-python, or a CUDA build "
                       "of torch)"]
    # a CUDA torch the driver supports is enough, though cuda-python is too new
    assert runtime_problem(CudaRuntimeFacts("13.0.1", "12.4"), 12060) is None


def test_auto_falls_back_when_tensorrt_fails_for_real(tiny_model: Path, caplog) -> None:
    from seg_ros.engines import _open_named

    warnings: list[str] = []
    # TensorRT is taken as chosen; here it really fails (no tensorrt, no GPU) and hands over
    engine = open_onnx_auto(tiny_model, "cpu", 1, _open_named, warnings.append,
                            choice=Choice("tensorrt", "cuda:0"))
    assert engine.backend == "onnxruntime" and len(warnings) == 1
    assert warnings[0].startswith("TensorRT failed (the TensorRT backend is not available")
    assert warnings[0] in engine.describe() and "\n" not in warnings[0]
    with caplog.at_level(logging.WARNING, logger="seg_ros.engines"):
        plain = open_engine(tiny_model)  # this machine: no GPU, no tensorrt -> quiet CPU
    assert plain.describe() == "onnxruntime CPUExecutionProvider (cpu)" and not caplog.records


# --- 10. onnxruntime providers --------------------------------------------------------------

def test_onnxruntime_silent_cpu_fallback_is_reported(tiny_model: Path) -> None:
    asked = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.warns(UserWarning):  # onnxruntime only warns, and runs on the CPU
        session = ort.InferenceSession(str(tiny_model), providers=asked)
    note = provider_report(asked, session.get_providers())
    assert note is not None and note.startswith("asked CUDAExecutionProvider but onnxruntime runs "
                           "CPUExecutionProvider: ")
    assert provider_report(["CPUExecutionProvider"], session.get_providers()) is None
    assert session_log_level("cpu") == 3 and session_log_level("cuda:0") == 2


def test_tensorrt_provider_runs_fp16_and_only_asks_what_ort_knows() -> None:
    assert tensorrt_provider_options("fp16", None)["trt_fp16_enable"] == "True"
    assert tensorrt_provider_options("fp32", None)["trt_fp16_enable"] == "False"
    assert tensorrt_provider_options("int8", None)["trt_int8_enable"] == "True"
    new = tensorrt_provider_options("fp16", "/c", ort_version="1.18.1")
    old = tensorrt_provider_options("fp16", "/c", ort_version="1.16.3")
    assert new["trt_timing_cache_path"] == "/c" and "trt_timing_cache_path" not in old
    assert old["trt_engine_cache_path"] == "/c"
    trt_ep = providers_for("tensorrt:1", ["TensorrtExecutionProvider", *CUDA_EP], "/c")
    assert trt_ep[0][0] == "TensorrtExecutionProvider" and trt_ep[0][1]["device_id"] == "1"
    assert trt_ep[0][1]["trt_fp16_enable"] == "True" and trt_ep[-1] == "CPUExecutionProvider"


def test_tensorrt_provider_cache_tree_is_made_before_the_session(tmp_path: Path) -> None:
    """onnxruntime's TensorRT provider makes only the last level of trt_engine_cache_path
    (a fresh ~/.cache/seg_ros/engines fails and the session silently runs on CUDA)."""
    cache = tmp_path / "home" / ".cache" / "seg_ros" / "engines"
    asked = providers_for("tensorrt", ["TensorrtExecutionProvider", *CUDA_EP], str(cache))
    make_cache_dirs(asked)
    assert cache.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EngineError, match="cache folder .*file/engines cannot be made .*"
                                          "engine_cache_dir"):
        make_cache_dirs(providers_for("tensorrt", ["TensorrtExecutionProvider", *CUDA_EP],
                                      str(blocker / "engines")))
    make_cache_dirs(["CPUExecutionProvider"])  # nothing to make


def test_cpu_onnxruntime_shadowing_gpu_build_is_named() -> None:
    hint = shadowing_hint(["onnxruntime", "onnxruntime-gpu"])
    assert hint is not None
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in hint
    assert shadowing_hint(["onnxruntime"]) is None and shadowing_hint(["onnxruntime-gpu"]) is None


# --- 2. labels for TensorRT: int32, the shipped file unchanged ------------------------------

def test_labels_cast_goes_int32_for_tensorrt_and_agrees(camvid_frame) -> None:
    before = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    data, changed = tensorrt_onnx(SHIPPED)
    assert changed == ["labels"]
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == before
    original = ort.InferenceSession(str(SHIPPED), providers=CPU_EP)
    rewritten = ort.InferenceSession(data, providers=CPU_EP)
    seg = Segmenter(open_engine(SHIPPED, "onnxruntime"))
    batch = seg.preprocess(camvid_frame[0])
    ref = original.run(["labels"], {"input": batch})[0]
    got = rewritten.run(["labels"], {"input": batch})[0]
    assert ref.dtype == np.uint8 and got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)
    model = onnx.load(str(SHIPPED))
    labels_to_int32(model)
    assert labels_to_int32(model) == []  # idempotent: nothing left to change


def test_float_to_uint8_cast_is_left_alone() -> None:
    node = helper.make_node("Cast", ["x"], ["labels"], to=TensorProto.UINT8)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "labels", TensorProto.UINT8, [1, 4])])
    assert labels_to_int32(helper.make_model(graph)) == []


# --- 11. int8: explicit Q/DQ where possible, implicit calibration where it exists -----------

# as the real 10.3 / 11.4 bindings report them (test_trt_conformance checks trt_caps on them)
TRT10 = TrtCaps("10.3.0", frozenset({"FP16", "INT8", "GPU_FALLBACK"}), implicit_int8=True)
TRT11 = TrtCaps("11.4.0", frozenset({"GPU_FALLBACK"}), implicit_int8=False,
                strongly_typed=True)
NEITHER = TrtCaps("9.0.0", frozenset({"GPU_FALLBACK"}), implicit_int8=False)


def test_precision_plan_per_tensorrt_generation() -> None:
    assert precision_plan("fp16", TRT10, qdq=False).flags == ("FP16",)
    assert precision_plan("fp16", TRT10, qdq=False, dla=True).flags == ("FP16", "GPU_FALLBACK")
    assert precision_plan("fp32", TRT10, qdq=False).flags == ()
    assert not any(precision_plan(p, TRT10, qdq=False).strongly_typed for p in ("fp32", "fp16"))
    implicit = precision_plan("int8", TRT10, qdq=False)
    assert implicit.calibrate and implicit.flags == ("INT8", "FP16") and implicit.convert is None
    assert "implicit calibration" in implicit.path and "deprecated" in implicit.path
    explicit = precision_plan("int8", TRT10, qdq=True)
    assert not explicit.calibrate and "explicit quantization" in explicit.path
    assert not explicit.strongly_typed and explicit.flags == ("INT8", "FP16")


def test_strongly_typed_tensorrt_converts_the_graph() -> None:
    explicit11 = precision_plan("int8", TRT11, qdq=True)
    assert explicit11.flags == () and not explicit11.calibrate and explicit11.strongly_typed
    assert explicit11.convert is None  # the Q/DQ graph as it is
    fp16 = precision_plan("fp16", TRT11, qdq=False)
    assert fp16.convert == "fp16" and fp16.strongly_typed and fp16.flags == ()
    assert "fp16 graph" in fp16.path
    int8 = precision_plan("int8", TRT11, qdq=False)
    assert int8.convert == "int8" and int8.strongly_typed and not int8.calibrate
    fp32 = precision_plan("fp32", TRT11, qdq=False)
    assert fp32.strongly_typed and fp32.convert is None and fp32.flags == ()
    assert precision_plan("fp16", TRT11, qdq=False, dla=True).flags == ("GPU_FALLBACK",)
    with pytest.raises(EngineError, match="TensorRT 9.0.0 has no implicit int8 .* "
                                          "--target tensorrt"):
        precision_plan("int8", NEITHER, qdq=False)
    with pytest.raises(EngineError, match="neither an FP16 builder flag nor strongly typed"):
        precision_plan("fp16", NEITHER, qdq=False)


def _qdq_model(zero_point_type: int, zero_point: int) -> onnx.ModelProto:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("z", zero_point_type, [], [zero_point])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph)


def test_qdq_detection_and_what_tensorrt_takes(tiny_model: Path) -> None:
    assert qdq_problems(_qdq_model(TensorProto.INT8, 0)) == []
    assert qdq_problems(_qdq_model(TensorProto.UINT8, 128)) == [
        "non-zero zero points (asymmetric ranges)", "uint8 quantization"]
    shipped_int8 = onnx.load(str(SHIPPED_INT8))  # `seg-ros quantize`: made for the CPU
    assert has_qdq(shipped_int8) and "uint8 quantization" in qdq_problems(shipped_int8)
    assert not has_qdq(onnx.load(str(SHIPPED)))
    with pytest.raises(ConfigError, match="TensorRT does not take .* --calib-data DIR"):
        validate_build_options(SHIPPED_INT8, BuildOptions(precision="int8"))


def test_symmetric_qdq_model_builds_without_calibration_data(tmp_path: Path) -> None:
    path = tmp_path / "q.onnx"
    onnx.save(_qdq_model(TensorProto.INT8, 0), str(path))
    assert validate_build_options(path, BuildOptions(precision="int8")).calib_cache is None
    with pytest.raises(ConfigError, match="carries its own int8 scales"):
        validate_build_options(path, BuildOptions(precision="fp16"))


def test_frames_read_for_calibration_are_the_segmenter_input(camvid_dir: Path) -> None:
    frame = list_frames(camvid_dir / "train", 1)[0]
    card = camvid_card(input_size=(90, 120))
    batch = next(iter(CalibrationBatches([frame], card)))
    seg = Segmenter(SimpleNamespace(card=card, input_shape=(1, 3, 90, 120)))
    np.testing.assert_array_equal(batch[0], seg.preprocess(read_rgb(frame))[0])


def test_build_engine_cli_refuses_the_cpu_qdq_model_in_one_line(capsys) -> None:
    from seg_ros.cli import main

    assert main(["build-engine", str(SHIPPED_INT8), "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "TensorRT does not take" in err and "--calib-data DIR" in err


def test_auto_survives_any_tensorrt_exception(tiny_model: Path) -> None:
    from seg_ros.engines import _open_named

    def opener(name: str, path: Path, **kw: object):
        if name == "tensorrt":  # e.g. a RuntimeError from the bindings, a CUDA error text
            raise RuntimeError("[TRT] [E] 1: [defaultAllocator.cpp::allocate] out of memory\n"
                               "second line")
        return _open_named(name, path, **kw)

    warnings: list[str] = []
    engine = open_onnx_auto(tiny_model, "cpu", 1, opener, warnings.append,
                            choice=Choice("tensorrt", "cuda:0"))
    assert engine.backend == "onnxruntime" and len(warnings) == 1
    assert "TensorRT failed (RuntimeError: [TRT] [E] 1:" in warnings[0]
    assert "\n" not in warnings[0] and "second line" not in warnings[0]
