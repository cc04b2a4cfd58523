"""`seg-ros gpu-check` (`make gpu-check`): every GPU backend here, checked end to end in minutes.

On whatever GPU stack it finds (onnxruntime-gpu's CUDA and TensorRT providers, TensorRT 10.3 ..
11.x with cuda-python or torch CUDA buffers, torch on CUDA) it builds the shipped CamVid model's
engines (fp32, fp16, int8 calibrated -- a calibrator on 10.x, a Q/DQ copy on 11.x -- and the
shipped Q/DQ int8 model), runs the CamVid val frames through each backend
and reports per backend: labels agreement with onnxruntime on the CPU, val mIoU, latency
median / p99 of a whole frame (pre-process, engine, post-process) at 480x360 and 640x480, and
the node end to end over real topics. What the machine lacks is reported as "not available",
not as a failure; so is the node run where rclpy is missing. A GPU machine with only torch
(CUDA) and the CPU onnxruntime gets the torch row: the shipped model rebuilt as TorchScript
(seg_ros/train/torch_program.py), labels against onnxruntime CPU, latency. The one step that
needs no GPU -- the TensorRT-bound ONNX (labels cast to int32) against the shipped ONNX on
onnxruntime -- runs everywhere.

Exit status 0 only when everything that could run passed. ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from seg_ros.gpucheck.backends import CAMVID, MODEL, Candidate, Row, candidates, environment
from seg_ros.gpucheck.measure import SIZES, Reference, check, export_row, reference, verdict

__all__ = ["MODEL", "Candidate", "Reference", "Row", "check", "main", "reference", "verdict"]



def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _latency(row: Row, size: str) -> str:
    if size not in row.latency_ms:
        return "-"
    median, p99 = row.latency_ms[size]
    return f"{median:.2f} / {p99:.2f}"


def table(rows: list[Row]) -> str:
    head = f"{'backend':42} {'status':13} {'agree %':>8} {'mIoU':>6} " + \
        " ".join(f"{k + ' med/p99 ms':>20}" for k in SIZES) + f" {'node ms':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lat = " ".join(f"{_latency(r, k):>20}" for k in SIZES)
        agree = None if r.agreement is None else 100 * r.agreement
        lines.append(f"{r.name:42} {r.status:13} {_fmt(agree, '.2f'):>8} "
                     f"{_fmt(r.miou, '.3f'):>6} {lat} {_fmt(r.node_ms, '.1f'):>8}")
        if r.detail:
            lines.append(f"    {r.detail}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=100, help="CamVid val frames (default 100)")
    p.add_argument("--skip-node", action="store_true", help="no node end-to-end runs")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu-check", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The table of every backend; 1 when a backend that could run failed, else 0."""
    env = environment()
    print("gpu-check on: " + json.dumps(env), flush=True)
    rows = [export_row()]
    cands = candidates(env, CAMVID / "train")
    runnable = [c for c in cands if c.missing() is None]
    if runnable:
        ref, ref_row = reference(args.frames)
        rows.append(ref_row)
        for cand in cands:
            print(f"checking {cand.name} ...", flush=True)
            rows.append(check(cand, ref, not args.skip_node))
    else:
        rows += [Row(c.name, detail=c.missing() or "") for c in cands]
    print(table(rows))
    failed = [r.name for r in rows if r.status == "FAIL"]
    print(f"{len(rows) - len(failed)} rows without failure, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    if args.json is not None:
        args.json.write_text(json.dumps({"environment": env, "rows": [asdict(r) for r in rows]},
                                        indent=1))
    return 1 if failed else 0

