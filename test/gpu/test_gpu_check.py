"""`make gpu-check` (seg_ros/gpucheck) on this machine, and its measuring code run for
real on the one backend every machine has: onnxruntime on the CPU, through a real node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seg_ros import gpucheck
from seg_ros.engines.gpu import cuda_device_count
from seg_ros.gpucheck import Candidate, Reference, Row, check, reference, verdict

pytestmark = pytest.mark.usefixtures("camvid_dir")


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")
def test_without_a_gpu_every_gpu_row_is_not_available(tmp_path: Path, capsys) -> None:
    from seg_ros.cli import main

    assert main(["gpu-check", "--json", str(tmp_path / "g.json")]) == 0  # = make gpu-check
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "g.json").read_text())["rows"]
    assert rows[0]["name"].startswith("export for TensorRT") and rows[0]["status"] == "pass"
    assert len(rows) > 5 and all(r["status"] == "not available" for r in rows[1:])
    assert all(r["detail"] for r in rows[1:])  # each says what is missing
    assert "tensorrt fp16" in out and "0 failed" in out
    torch_row = next(r for r in rows if r["name"].startswith("torch CUDA"))
    assert torch_row["detail"] == "torch has no CUDA (a CPU build, or no GPU / driver)"


def test_torch_row_runs_the_shipped_model_rebuilt_as_torchscript(tmp_path: Path) -> None:
    """The row a GPU machine with only torch (CUDA) gets, run here on the CPU: the shipped
    ONNX rebuilt in torch (BN-folded Conv weights by module path) gives onnxruntime's labels."""
    from seg_ros.train.torch_program import module_path, torch_program

    assert module_path("/net/encoder/features.1/conv/conv.0/conv.0.0/Conv") == \
        "net.encoder.features.1.conv.0.0"
    ref, _ = reference(3)
    program = tmp_path / "camvid.pt"
    cand = Candidate("torch", "torch", "cpu", {}, lambda: None,
                     model=lambda: torch_program(gpucheck.MODEL, program))
    row = check(cand, ref, with_node=False, runs=3)
    assert row.status == "pass", row.detail
    assert row.agreement is not None and row.agreement >= 0.999 and program.is_file()
    assert row.detail.startswith("torch ")


def test_a_backend_is_measured_and_run_through_a_node() -> None:
    ref, ref_row = reference(3)
    assert ref_row.status == "pass" and 0.0 < ref.miou <= 1.0 and len(ref.frames) == 3
    cpu = Candidate("onnxruntime CPU", "onnxruntime", "cpu", {"threads": 1}, lambda: None,
                    {"backend": "onnxruntime", "device": "cpu", "threads": "1"})
    row = check(cpu, ref, with_node=True, runs=3)
    assert row.status == "pass", row.detail
    assert row.agreement == 1.0 and row.miou == pytest.approx(ref.miou)
    assert set(row.latency_ms) == {"480x360", "640x480"}
    assert all(0 < med <= p99 for med, p99 in row.latency_ms.values())
    assert row.node_ms is not None and row.node_ms > 0
    assert "node: " in row.detail and "onnxruntime CPUExecutionProvider" in row.detail
    missing = check(Candidate("x", "tensorrt", "cuda", {}, lambda: "no CUDA GPU"), ref, False)
    assert missing.status == "not available" and missing.detail == "no CUDA GPU"
    broken = check(Candidate("y", "tensorrt", "cuda", {}, lambda: None), ref, False)
    assert broken.status == "FAIL" and broken.detail.startswith("EngineError: ")


def test_verdicts() -> None:
    ref = Reference([], [], [], miou=0.60, num_classes=11)
    fp16 = Candidate("fp16", "tensorrt", "cuda", {}, lambda: None)
    int8 = Candidate("int8", "tensorrt", "cuda", {}, lambda: None, int8=True)
    assert verdict(Row("a", agreement=0.996, miou=0.6), fp16, ref, None) == "pass"
    assert verdict(Row("a", agreement=0.990, miou=0.6), fp16, ref, None) == "FAIL"
    assert verdict(Row("a", agreement=0.97, miou=0.59), int8, ref, None) == "pass"
    assert verdict(Row("a", agreement=0.97, miou=0.58), int8, ref, None) == "FAIL"
    assert verdict(Row("a", agreement=1.0, miou=0.6), fp16, ref, 44) == "FAIL"
    fallback = Row("a", detail="asked CUDAExecutionProvider but onnxruntime runs "
                               "CPUExecutionProvider: ...", agreement=1.0, miou=0.6)
    assert verdict(fallback, fp16, ref, None) == "FAIL"
