"""gpu-check's measurements: labels against onnxruntime on the CPU, val mIoU, whole-frame
latency, a real node over real topics; one :class:`Row` per backend, never an exception."""

from __future__ import annotations

import functools
import importlib.util
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from seg_ros.gpucheck.backends import CAMVID, MODEL, Candidate, Row
from seg_ros.pipeline import NODE_NAME
from seg_ros.timing import samples_ms

SIZES = {"480x360": (480, 360), "640x480": (640, 480)}  # name -> (width, height) of a frame
AGREEMENT_MIN = 0.995  # labels equal to onnxruntime CPU, fp32 / fp16
INT8_MIOU_DROP_MAX = 0.015  # int8 moves boundary pixels: its mIoU may drop this much, no more
NODE = f"/{NODE_NAME}"


def _segment_once(seg: Any, rgb: np.ndarray, _k: int) -> object:
    """One timed call of the segmenter (the sample index is unused)."""
    return seg(rgb)


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
        times = samples_ms(functools.partial(_segment_once, seg, rgb), runs, warm)
        out[name] = (float(np.median(times)), float(np.percentile(times, 99)))
    return out


def node_end_to_end(params: dict[str, str], frames: list[np.ndarray], n: int = 50,
                    hz: float = 10.0) -> tuple[float | None, int, str]:
    """(median ms from publish to labels received, frames answered of ``n``, the engine the
    node's /diagnostics names) for a real node process fed over a real topic at ``hz``."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.live import LiveClient, NodeProcess, ask, param_args, pick_domain
    from seg_ros.ros.convert import to_image_msg

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
    from seg_ros.engines.tensorrt.graph import tensorrt_onnx
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

