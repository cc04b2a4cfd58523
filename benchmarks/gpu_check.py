"""`make gpu-check`: every GPU backend this machine has, checked end to end in minutes.

On whatever GPU stack it finds (onnxruntime-gpu's CUDA and TensorRT providers, TensorRT 10.3 ..
11.x with cuda-python or torch CUDA buffers, torch on CUDA) it builds the shipped CamVid model's
engines (fp32, fp16, int8 calibrated -- a calibrator on 10.x, a Q/DQ copy on 11.x -- and the
shipped Q/DQ int8 model), runs the CamVid val frames through each backend
and reports per backend: labels agreement with onnxruntime on the CPU, val mIoU, latency
median / p99 of a whole frame (pre-process, engine, post-process) at 480x360 and 640x480, and
the node end to end over real topics. What the machine lacks is reported as "not available",
not as a failure; so is the node run where rclpy is missing. A GPU machine with only torch
(CUDA) and the CPU onnxruntime gets the torch row: the shipped model rebuilt as TorchScript
(benchmarks/torch_program.py), labels against onnxruntime CPU, latency. The one step that
needs no GPU -- the TensorRT-bound ONNX (labels cast to int32) against the shipped ONNX on
onnxruntime -- runs everywhere.

Exit status 0 only when everything that could run passed. ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.timing import samples_ms
from seg_ros.pipeline import NODE_NAME

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "camvid.onnx"
CAMVID = Path(os.environ.get("SEG_ROS_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))
SIZES = {"480x360": (480, 360), "640x480": (640, 480)}  # name -> (width, height) of a frame
AGREEMENT_MIN = 0.995  # labels equal to onnxruntime CPU, fp32 / fp16
INT8_MIOU_DROP_MAX = 0.015  # int8 moves boundary pixels: its mIoU may drop this much, no more
NODE = f"/{NODE_NAME}"


@dataclass
class Row:
    """One backend's results; ``status`` is pass, FAIL or not available."""

    name: str
    status: str = "not available"
    detail: str = ""
    agreement: float | None = None
    miou: float | None = None
    latency_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # (median, p99)
    node_ms: float | None = None
    open_s: float | None = None


@dataclass(frozen=True)
class Candidate:
    """A backend to check: how to open it, why it cannot run here (None: it can), and the
    node parameters for the end-to-end run (None: not run through a node)."""

    name: str
    backend: str
    device: str
    options: dict[str, Any]
    missing: Callable[[], str | None]
    node_params: dict[str, str] | None = None
    int8: bool = False
    model: Callable[[], Path] | None = None  # the file to open (default: the shipped ONNX)


# --- what this machine has ------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Driver, GPU, packages: printed first so a table can be read against its machine."""
    from seg_ros.engines.auto import ort_providers
    from seg_ros.engines.gpu import (
        cuda_device_count,
        cuda_runtime_facts,
        current_gpu,
        driver_cuda_version,
        package_version,
    )
    from seg_ros.engines.onnxruntime import onnxruntime_distributions, shadowing_hint

    gpus = cuda_device_count()
    facts = cuda_runtime_facts(probe_torch=gpus > 0)
    driver = driver_cuda_version()
    return {"gpus": gpus, "gpu": asdict(g) if (g := current_gpu(0)) else None,
            "driver_cuda": f"{driver // 1000}.{driver % 1000 // 10}" if driver else None,
            "tensorrt": package_version("tensorrt"), "cuda_python": facts.cuda_python,
            "torch_cuda": facts.torch_cuda, "onnxruntime": onnxruntime_distributions(),
            "ort_providers": ort_providers(), "ort_shadowing": shadowing_hint()}


def _ort_missing(provider: str, env: dict[str, Any]) -> Callable[[], str | None]:
    def missing() -> str | None:
        if not env["gpus"]:
            return "no CUDA GPU"
        if provider not in env["ort_providers"]:
            return env["ort_shadowing"] or f"this onnxruntime has no {provider} " \
                "(pip install onnxruntime-gpu)"
        return None
    return missing


def _trt_missing(buffers: str = "auto") -> Callable[[], str | None]:
    def missing() -> str | None:
        from seg_ros.engines.gpu import (
            CudaRuntimeFacts,
            cuda_device_count,
            cuda_runtime_facts,
            tensorrt_problems,
        )

        facts = cuda_runtime_facts(probe_torch=cuda_device_count() > 0)  # torch: only if useful
        if buffers == "torch":
            facts = CudaRuntimeFacts(None, facts.torch_cuda)
        elif buffers == "cuda-python":
            facts = CudaRuntimeFacts(facts.cuda_python, None)
        problems = tensorrt_problems(0, facts)
        return "missing " + " and ".join(problems) if problems else None
    return missing


def _torch_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "no torch"
    from seg_ros.engines.torch import torch_cuda_version

    if torch_cuda_version() is None:
        return "torch has no CUDA (a CPU build, or no GPU / driver)"
    return None


def _torch_model() -> Path:
    """TorchScript of the shipped model (benchmarks/torch_program.py), made once."""
    from benchmarks.torch_program import torch_program
    from seg_ros.engines.trt_cache import DEFAULT_CACHE_DIR

    return torch_program(MODEL, Path(DEFAULT_CACHE_DIR).expanduser().parent / "camvid.pt")


def candidates(env: dict[str, Any], calib: Path) -> list[Candidate]:
    from seg_ros.engines.trt_cache import DEFAULT_CACHE_DIR

    cache = str(Path(DEFAULT_CACHE_DIR).expanduser())
    trt = {"engine_cache_dir": cache}
    return [
        Candidate("onnxruntime CUDA", "onnxruntime", "cuda", {},
                  _ort_missing("CUDAExecutionProvider", env),
                  {"backend": "onnxruntime", "device": "cuda"}),
        Candidate("onnxruntime TensorRT EP fp16", "onnxruntime", "tensorrt",
                  {"precision": "fp16", "trt_cache_dir": cache},
                  _ort_missing("TensorrtExecutionProvider", env)),
        Candidate("tensorrt fp32", "tensorrt", "cuda", {**trt, "precision": "fp32"},
                  _trt_missing()),
        Candidate("tensorrt fp16", "tensorrt", "cuda", {**trt, "precision": "fp16"},
                  _trt_missing(), {"backend": "tensorrt", "device": "cuda"}),
        Candidate("tensorrt fp16, cuda-python buffers", "tensorrt", "cuda",
                  {**trt, "precision": "fp16", "cuda_buffers": "cuda-python"},
                  _trt_missing("cuda-python")),
        Candidate("tensorrt fp16, torch CUDA buffers", "tensorrt", "cuda",
                  {**trt, "precision": "fp16", "cuda_buffers": "torch"}, _trt_missing("torch")),
        Candidate("tensorrt int8 (calibrated on CamVid train)", "tensorrt", "cuda",
                  {**trt, "precision": "int8", "calib_data": str(calib)},
                  _trt_missing(), int8=True),
        Candidate("tensorrt int8 (Q/DQ models/camvid.trt-int8.onnx)", "tensorrt", "cuda",
                  {**trt, "precision": "int8"}, _trt_missing(), int8=True,
                  model=lambda: MODEL.with_name("camvid.trt-int8.onnx")),
        Candidate("torch CUDA (TorchScript of the same model)", "torch", "cuda", {},
                  _torch_missing, model=_torch_model),
        Candidate("auto (the node's defaults)", "auto", "cpu", {},
                  lambda: None if env["gpus"] else "no CUDA GPU", {}),
    ]


# --- measurements ---------------------------------------------------------------------------


def val_pairs(limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB frame, ground-truth labels) of the first ``limit`` CamVid val frames."""
    from seg_ros.train.data import find_dataset_spec, load_pair, pair_files, split_dirs

    spec = find_dataset_spec(CAMVID)
    return [load_pair(i, lab, spec) for i, lab in pair_files(*split_dirs(CAMVID, "val"))[:limit]]


def labels_of(engine: Any, frames: list[np.ndarray]) -> list[np.ndarray]:
    from seg_ros.segmenter import Segmenter

    seg = Segmenter(engine)
    return [seg(f, want_confidence=False).labels for f in frames]


def agreement(labels: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Fraction of pixels whose class equals the reference's."""
    same = sum(int(np.count_nonzero(a == b)) for a, b in zip(labels, reference))
    return same / sum(r.size for r in reference)


def miou(labels: list[np.ndarray], truth: list[np.ndarray], num_classes: int) -> float:
    from seg_ros import metrics
    from seg_ros.train.data import find_dataset_spec

    meter = metrics.ConfusionMeter(num_classes, find_dataset_spec(CAMVID).ignore_index)
    for pred, lab in zip(labels, truth):
        meter.update(pred, lab)
    return metrics.mean_iou(meter.compute())


def latency_ms(engine: Any, frame: np.ndarray, runs: int = 200
               ) -> dict[str, tuple[float, float]]:
    """Median and p99 (ms) of one whole frame -- labels and confidence, as the node asks --
    at each size of :data:`SIZES`, after ``runs // 10`` warm-up frames."""
    from seg_ros.segmenter import Segmenter

    seg = Segmenter(engine)
    out = {}
    warm = runs // 10
    for name, (w, h) in SIZES.items():
        rgb = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        def one(_k: int, rgb: np.ndarray = rgb) -> Any:
            return seg(rgb)

        times = samples_ms(one, runs, warm)
        out[name] = (float(np.median(times)), float(np.percentile(times, 99)))
    return out


def node_end_to_end(params: dict[str, str], frames: list[np.ndarray], n: int = 50,
                    hz: float = 10.0) -> tuple[float | None, int, str]:
    """(median ms from publish to labels received, frames answered of ``n``, the engine the
    node's /diagnostics names) for a real node process fed over a real topic at ``hz``."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.ros.convert import to_image_msg
    from seg_ros.testing import LiveClient, NodeProcess, ask, param_args, pick_domain

    domain = pick_domain()
    node = NodeProcess([*param_args({"model_path": str(MODEL), **params}),
                        "-r", "image:=/gpu_check/image"], domain)
    client = LiveClient(domain)
    counter = None
    try:
        pub = client.publisher(Image, "/gpu_check/image", depth=1)
        counter = client.count_outputs(NODE, ("labels",))
        # an engine build on first start takes minutes
        client.wait_ready(node, pub, NODE, ("labels",), timeout=300)
        msgs = [to_image_msg(f, "rgb8", Header()) for f in frames[:8]]
        lat = []
        for k in range(n):
            t0 = time.monotonic()
            if (ms := ask(pub, msgs[k % len(msgs)], counter, 2.0)) is not None:
                lat.append(ms)
            time.sleep(max(0.0, 1.0 / hz - (time.monotonic() - t0)))
        _level, _msg, values = client.diagnostics(NODE, timeout=10)
        return (float(np.median(lat)) if lat else None), len(lat), values.get("engine", "?")
    finally:
        if counter is not None:
            counter.close()
        client.close()
        node.stop()


# --- one row per backend --------------------------------------------------------------------


@dataclass
class Reference:
    """onnxruntime on the CPU over the same frames: the labels every backend is held to."""

    frames: list[np.ndarray]
    truth: list[np.ndarray]
    labels: list[np.ndarray]
    miou: float
    num_classes: int


def measure(row: Row, engine: Any, ref: Reference, runs: int = 200) -> None:
    row.detail = engine.describe()
    labels = labels_of(engine, ref.frames)
    row.agreement = agreement(labels, ref.labels)
    row.miou = miou(labels, ref.truth, ref.num_classes)
    row.latency_ms = latency_ms(engine, ref.frames[0], runs)


def verdict(row: Row, cand: Candidate, ref: Reference, answered: int | None) -> str:
    """pass / FAIL: agreement (fp32, fp16) or the mIoU drop (int8), the provider really
    running (onnxruntime's silent CPU fallback fails), the node answering 90 % of frames."""
    if "but onnxruntime runs" in row.detail:
        return "FAIL"
    if row.agreement is not None:
        ok = row.miou is not None and row.miou >= ref.miou - INT8_MIOU_DROP_MAX if cand.int8 \
            else row.agreement >= AGREEMENT_MIN
        if not ok:
            return "FAIL"
    return "FAIL" if answered is not None and answered < 45 else "pass"


def check(cand: Candidate, ref: Reference, with_node: bool, runs: int = 200) -> Row:
    """Open (build) the backend, measure it, run it through a node; never raises."""
    from seg_ros.engines import open_engine

    row = Row(cand.name)
    why = cand.missing()
    if why:
        row.detail = why
        return row
    answered = None
    try:
        if cand.backend != "auto":
            t0 = time.perf_counter()
            model = cand.model() if cand.model is not None else MODEL
            engine = open_engine(model, cand.backend, cand.device, **cand.options)
            row.open_s = time.perf_counter() - t0
            measure(row, engine, ref, runs)
            del engine
        if with_node and cand.node_params is not None and importlib.util.find_spec(
                "rclpy") is None:
            row.detail += "; node not run: rclpy is not installed"
        elif with_node and cand.node_params is not None:
            row.node_ms, answered, described = node_end_to_end(cand.node_params, ref.frames)
            row.detail = row.detail or described
            row.detail += f"; node: {answered}/50 frames, engine {described!r}"
        row.status = verdict(row, cand, ref, answered)
    except Exception as e:  # a backend that breaks is a row, not the end of the check
        first = (str(e).strip().splitlines() or [""])[0][:300]
        row.status, row.detail = "FAIL", f"{type(e).__name__}: {first}"
    return row


def reference(frames_n: int) -> tuple[Reference, Row]:
    from seg_ros.engines import open_engine

    pairs = val_pairs(frames_n)
    frames, truth = [p[0] for p in pairs], [p[1] for p in pairs]
    engine = open_engine(MODEL, "onnxruntime", "cpu")
    labels = labels_of(engine, frames)
    ref = Reference(frames, truth, labels, 0.0, engine.card.num_classes)
    ref.miou = miou(labels, truth, ref.num_classes)
    row = Row("onnxruntime CPU (reference)", "pass", engine.describe(), 1.0, ref.miou,
              latency_ms(engine, frames[0], runs=50))
    return ref, row


def export_row(n: int = 5) -> Row:
    """The TensorRT-bound ONNX (labels cast to int32) gives the shipped ONNX's labels on
    onnxruntime (no GPU needed)."""
    import onnxruntime as ort

    from seg_ros.engines import open_engine
    from seg_ros.engines.trt_onnx import tensorrt_onnx
    from seg_ros.segmenter import Segmenter

    row = Row("export for TensorRT (labels int32)")
    data, changed = tensorrt_onnx(MODEL)
    cpu = ["CPUExecutionProvider"]
    shipped, bound = ort.InferenceSession(str(MODEL), providers=cpu), \
        ort.InferenceSession(data, providers=cpu)
    seg = Segmenter(open_engine(MODEL, "onnxruntime", "cpu"))
    same = 0
    for frame, _truth in val_pairs(n):
        batch = seg.preprocess(frame)
        a, b = (s.run(["labels"], {"input": batch})[0] for s in (shipped, bound))
        same += int(b.dtype == np.int32 and np.array_equal(a, b))
    row.status = "pass" if same == n and changed == ["labels"] else "FAIL"
    row.detail = f"outputs made int32: {changed}; labels identical on {same}/{n} val frames"
    row.agreement = same / n
    return row


# --- the table ------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100, help="CamVid val frames (default 100)")
    p.add_argument("--skip-node", action="store_true", help="no node end-to-end runs")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
