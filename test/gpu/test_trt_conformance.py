"""seg_ros against the REAL TensorRT 10.3 / newest 10.x / newest 11.x Python bindings, the real
cuda-python 12.x and 13.x runtime bindings and the real onnxruntime-gpu TensorRT provider's
option names, on a machine without a GPU (test/gpu/trt_conformance.py says how they are made
importable). The first run downloads about 285 MB with pip into ~/.cache/seg_ros/conformance
(SEG_ROS_TEST_CACHE moves it); later runs reuse it.

What this proves: every TensorRT name, enum member and method signature seg_ros calls exists
in each release with the parameters it passes; the stand-in module the other tests use has the
real names, parameters and enum values; seg_ros's precision plan picks builder flags on 10.x and
converted graphs on 11.x from the real modules; the real failure of a TensorRT that cannot start
(the nullptr TypeError) is one EngineError line. What it cannot: build or run an engine.
"""

from __future__ import annotations

import shutil

import pytest
import trt_conformance as tc

from seg_ros.engines.onnxruntime import tensorrt_provider_options

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None,
                                reason="needs gcc and binutils (nm, readelf)")


@pytest.fixture(scope="module", params=tc.TENSORRT, ids=lambda b: b.version)
def real_trt(request) -> dict:
    return tc.run_probe(tc.tensorrt_bindings(request.param), "tensorrt")


def test_every_tensorrt_name_seg_ros_uses_exists_with_its_parameters(real_trt: dict) -> None:
    assert real_trt["problems"] == []
    assert len(real_trt["checked"]) >= 45


def test_the_stand_in_module_matches_the_real_one(real_trt: dict) -> None:
    assert real_trt["fake_problems"] == []


def test_precision_plan_from_what_the_real_module_offers(real_trt: dict) -> None:
    plans, major = real_trt["plans"], int(real_trt["version"].split(".")[0])
    if major == 10:
        assert real_trt["caps"] == {"flags": ["FP16", "GPU_FALLBACK", "INT8"],
                                    "implicit_int8": True, "strongly_typed": False}
        assert plans["fp16"] == {"flags": ["FP16"], "convert": None, "calibrate": False,
                                 "strongly_typed": False}
        assert plans["int8"]["calibrate"] and plans["int8"]["flags"] == ["INT8", "FP16"]
        assert plans["int8-qdq"]["flags"] == ["INT8", "FP16"]
    else:
        assert real_trt["caps"] == {"flags": ["GPU_FALLBACK"], "implicit_int8": False,
                                    "strongly_typed": True}
        assert plans["fp16"] == {"flags": [], "convert": "fp16", "calibrate": False,
                                 "strongly_typed": True}
        assert plans["int8"] == {"flags": [], "convert": "int8", "calibrate": False,
                                 "strongly_typed": True}
        assert plans["int8-qdq"]["convert"] is None and plans["int8-qdq"]["flags"] == []
    assert plans["fp32"]["flags"] == [] and plans["fp32"]["convert"] is None


def test_io_types_map_from_the_real_enums(real_trt: dict) -> None:
    assert real_trt["dtypes"] == {"FLOAT": "float32", "HALF": "float16", "INT8": "int8",
                                  "INT32": "int32", "INT64": "int64", "BOOL": "bool",
                                  "UINT8": "uint8"}
    assert real_trt["modes"] == ["INPUT", "OUTPUT"]


def test_build_engine_runs_to_the_real_builder_and_io_checks_take_real_enums(real_trt: dict
                                                                            ) -> None:
    """`seg-ros build-engine models/camvid.onnx` with the real module gets through its checks
    and plan to trt.Builder, where the missing GPU stops it in one line."""
    assert real_trt["errors"]["build"].startswith("TensorRT could not create its Builder")
    assert real_trt["io"] == {"input": ["input", "float32"],
                              "outputs": [["labels", "int32"], ["confidence", "float32"]]}


def test_a_tensorrt_that_cannot_start_is_one_line(real_trt: dict) -> None:
    """The real bindings raise TypeError from trt.Builder / trt.Runtime when the library's
    factory returns NULL; seg_ros says what and what to do, in one line."""
    for what, name in (("builder", "Builder"), ("runtime", "Runtime")):
        msg = real_trt["errors"][what]
        assert msg.startswith(f"TensorRT could not create its {name} (pybind11::init(): "
                              "factory function returned nullptr")
        assert "\n" not in msg and "nvidia-smi" in msg and "'onnxruntime'" in msg


@pytest.mark.parametrize("which", ["12", "13"])
def test_cuda_python_calls_exist_and_fail_in_one_line_without_a_driver(which: str) -> None:
    import sys
    from pathlib import Path

    prepared = tc.cuda_bindings_12() if which == "12" else tc.Prepared(
        "venv cuda-bindings", Path(sys.prefix))  # 13.x: the venv's own
    report = tc.run_probe(prepared, "cuda")
    assert report["version"].startswith(which + ".")
    assert report["problems"] == [] and report["stream"] == 0x1234
    assert report["no_driver"].startswith("CUDA error") and "nvidia-smi" in report["no_driver"]


def test_onnxruntime_gpu_parses_every_tensorrt_option_seg_ros_passes(tmp_path) -> None:
    facts = tc.onnxruntime_gpu_facts()
    passed = {**tensorrt_provider_options("int8", str(tmp_path), ort_version=facts["version"]),
              "device_id": "0"}
    assert set(passed) <= set(facts["trt_options"]), set(passed) - set(facts["trt_options"])
    # what docs/gpu.md says of it: TensorRT 10 and CUDA 12 (it never loads beside TensorRT 11)
    assert "libnvinfer.so.10" in facts["trt_needs"] and "libcudart.so.12" in facts["trt_needs"]
