"""Three cameras at 15 Hz each (640x480 rgb8): one seg_ros node with ``cameras`` vs three
single-camera seg_ros nodes, measured in the same run.

All four node processes (the shipped models/camvid.onnx, else a tiny model) run in one private
ROS domain under their own namespaces, so each set only sees its own topics; rounds alternate
between the sets (the idle set gets no images). Per round, three publisher threads keep a 15 Hz
cadence per camera for ``SECONDS`` s and the client takes every ``labels`` output raw.

Figures: ``cameras_throughput_hz_{one_node,three_nodes}`` (labels out per second, all cameras),
``cameras_throughput_ratio`` (one node / three nodes, median of per-round-pair ratios),
``cameras_latency_ms_{median,p99}_{camera}_{one_node,three_nodes}`` (publish -> labels received),
``cameras_latency_spread_{one_node,three_nodes}`` (largest / smallest per-camera median: 1 when
every camera sees the same latency; the cameras are triggered together, as synchronised ones
are),
``cameras_rss_mb_{one_node,three_nodes}`` and ``cameras_rss_ratio`` (resident memory of the one
process / of the three together, after the rounds), ``cameras_batch_size_mean`` (the one node's
frames per engine call, from its /diagnostics). ``cameras_engine_ms_{three_calls,one_call}``:
the engine alone on three frames, three batch-1 calls vs one call of a dynamic-batch copy of
the same model (``cameras_one_call_ratio`` = one call / three calls). Set-up: each node as
its user would run it on this 2-core machine: the one node ``threads:=2`` (one engine), each of
the three ``threads:=1``.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np

from seg_ros.live import LiveClient, NodeProcess, pick_domain, rss_mb, stamp_now
from seg_ros.live.models import camvid_frames, shipped_or_tiny_model

CAMERAS = ("front", "left", "rear")
RATE_HZ = 15.0
SECONDS = 10.0
ROUNDS = 2


def _image(rgb: np.ndarray) -> Any:
    from sensor_msgs.msg import Image

    from seg_ros.ros.convert import byte_array

    h, w, _ = rgb.shape
    return Image(height=h, width=w, encoding="rgb8", step=3 * w,
                 data=byte_array(np.ascontiguousarray(rgb).tobytes()))


class _Set:
    """One way of serving the three cameras: its processes, input publishers, output topics."""

    def __init__(self, name: str, procs: list[NodeProcess], inputs: dict[str, str],
                 outputs: dict[str, str]) -> None:
        self.name, self.procs, self.inputs, self.outputs = name, procs, inputs, outputs
        self.pubs: dict[str, Any] = {}
        self.throughput: list[float] = []
        self.latency: dict[str, list[float]] = {c: [] for c in CAMERAS}


def _start(model: Any, domain: int) -> tuple[_Set, _Set]:
    common = ["-p", f"model_path:={model}", "-p", "publish_confidence:=false"]
    one = NodeProcess([*common, "-p", "threads:=2", "-p", "cameras:=[front, left, rear]",
                       "-r", "__ns:=/one"], domain, name="seg")
    three = [NodeProcess([*common, "-p", "threads:=1", "-r", f"__ns:=/three/{c}"], domain,
                         name="seg") for c in CAMERAS]
    return (_Set("one_node", [one], {c: f"/one/{c}/image" for c in CAMERAS},
                 {c: f"/one/seg/{c}/labels" for c in CAMERAS}),
            _Set("three_nodes", three, {c: f"/three/{c}/image" for c in CAMERAS},
                 {c: f"/three/{c}/seg/labels" for c in CAMERAS}))


def _stream(pub: Any, msg: Any, camera: str, sent: dict[int, float], seconds: float) -> None:
    t0 = time.monotonic()
    for k in range(int(seconds * RATE_HZ)):
        time.sleep(max(0.0, t0 + k / RATE_HZ - time.monotonic()))
        stamp = stamp_now(msg, camera)
        sent[stamp] = time.monotonic()
        pub.publish(msg)


def _round(client: LiveClient, s: _Set, frames: dict[str, Any]) -> None:
    """Three cameras at 15 Hz into set ``s`` for SECONDS s; its throughput and latencies."""
    from seg_ros.live import RawCounter

    counters = {c: RawCounter(client, s.outputs[c].rsplit("/", 1)[0], ["labels"])
                for c in CAMERAS}
    sent: dict[str, dict[int, float]] = {c: {} for c in CAMERAS}
    threads = [threading.Thread(target=_stream, args=(s.pubs[c], frames[c], c, sent[c],
                                                      SECONDS)) for c in CAMERAS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    total = 0
    for c in CAMERAS:
        got = counters[c].got["labels"]
        counters[c].close()
        lat = [(got[st] - t) * 1e3 for st, t in sent[c].items() if st in got]
        s.latency[c] += lat
        total += len(lat)
    s.throughput.append(total / SECONDS)


def _wait_ready(client: LiveClient, s: _Set, timeout: float = 120.0) -> None:
    for c in CAMERAS:
        proc = s.procs[0] if len(s.procs) == 1 else s.procs[CAMERAS.index(c)]
        node, _, output = s.outputs[c].rpartition("/")
        client.wait_ready(proc, s.pubs[c], node, [output], timeout)


def run() -> dict[str, float]:
    from sensor_msgs.msg import Image

    model = shipped_or_tiny_model()
    domain = pick_domain()
    sets = _start(model, domain)
    client = LiveClient(domain, name="bench_cameras")
    try:
        frames = {c: _image(rgb) for c, rgb in zip(CAMERAS, camvid_frames(3, (640, 480)))}
        for s in sets:
            s.pubs = {c: client.publisher(Image, s.inputs[c], depth=1, reliable=False)
                      for c in CAMERAS}
            _wait_ready(client, s)
        for _ in range(ROUNDS):
            for s in sets:
                _round(client, s, frames)
        _, _, diag = client.diagnostics("/one/seg", timeout=5.0)
        rss = [sum(rss_mb(p.pid) for p in s.procs) for s in sets]
    finally:
        client.close()
        for s in sets:
            for p in s.procs:
                p.stop()
    return {**_figures(sets, rss, diag), **_engine_batch(model)}


def _engine_batch(model: Any, repeats: int = 15) -> dict[str, float]:
    """Three frames through the engine: three calls of the model vs one call of its copy with
    a dynamic batch dimension (the same weights; labels checked equal)."""
    import tempfile
    from pathlib import Path

    import onnx

    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    graph = onnx.load(str(model))
    for v in [*graph.graph.input, *graph.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.graph.value_info[:]
    dyn = Path(tempfile.mkdtemp(prefix="seg_ros_batch_")) / "dynamic.onnx"
    onnx.save(graph, str(dyn))
    one, many = (Segmenter(open_engine(p, "onnxruntime", threads=2)) for p in (model, dyn))
    batch = one.preprocess_batch(camvid_frames(3, (640, 480))).copy()
    timings: dict[str, list[float]] = {"three_calls": [], "one_call": []}
    for _ in range(repeats):
        for key, seg in (("three_calls", one), ("one_call", many)):
            t0 = time.perf_counter()
            outputs = seg.infer_batch(batch, want_confidence=True)
            timings[key].append((time.perf_counter() - t0) * 1e3)
        assert all(np.array_equal(a[one.model_card.output], b[one.model_card.output])
                   for a, b in zip(one.infer_batch(batch), outputs))
    out = {f"cameras_engine_ms_{k}": statistics.median(v) for k, v in timings.items()}
    out["cameras_one_call_ratio"] = out["cameras_engine_ms_one_call"] / out[
        "cameras_engine_ms_three_calls"]
    return out


def _figures(sets: tuple[_Set, _Set], rss: list[float], diag: dict[str, str]
             ) -> dict[str, float]:
    one, three = sets
    out: dict[str, float] = {}
    for s in sets:
        out[f"cameras_throughput_hz_{s.name}"] = statistics.median(s.throughput)
        for c in CAMERAS:
            lat = np.asarray(s.latency[c] or [float("nan")])
            out[f"cameras_latency_ms_median_{c}_{s.name}"] = float(np.median(lat))
            out[f"cameras_latency_ms_p99_{c}_{s.name}"] = float(np.percentile(lat, 99))
        medians = [out[f"cameras_latency_ms_median_{c}_{s.name}"] for c in CAMERAS]
        out[f"cameras_latency_spread_{s.name}"] = max(medians) / min(medians)
    out["cameras_throughput_ratio"] = statistics.median(
        a / b for a, b in zip(one.throughput, three.throughput) if b > 0)
    out["cameras_rss_mb_one_node"], out["cameras_rss_mb_three_nodes"] = rss
    out["cameras_rss_ratio"] = rss[0] / rss[1]
    out["cameras_batch_size_mean"] = float(diag.get("batch_size_mean", "nan"))
    out["cameras_input_hz"] = RATE_HZ * len(CAMERAS)
    return out


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:.2f}")
