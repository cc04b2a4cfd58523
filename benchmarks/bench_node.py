"""End-to-end latency of the segmentation node over real topics at 640x480 vs the bare engine.

A real ``seg-ros node`` process (the shipped models/camvid.onnx, else a tiny model at 360x480)
in a private ROS domain, every output subscribed (labels, confidence, colour mask, overlay).
One rgb8 frame is published, stamped with the wall clock just before ``publish``; the next
goes out once all four outputs of the previous one arrived. ``node_latency_ms_640x480`` is the
median of stamp -> last output received (transport both ways, decode, pre-process, engine,
post-process, rendering, encode). ``engine_latency_ms_640x480`` is ``Segmenter.infer`` alone on
the same frames with the same thread count, measured in this process in the same run.

Rounds interleave (1) the node with a client that takes the outputs raw (serialised, as any
C++ consumer or a raw=True subscriber would: the measured latency is the node's, not the
client's deserialisation), (2) the node with a client deserialising all four images into
Python (how this bench measured before), (3) the bare engine while the node idles.
``node_overhead_ratio`` is the median of per-round node / engine ratios. The node's own
per-stage medians and receive -> published time come from its /diagnostics
(``node_stage_*``; ``node_worker_over_engine`` = worker / engine inside the node).

The same client then measures benchmarks/transport_floor.py in place of the node: a node that
does no pixel work, only takes the image and publishes four pre-built outputs of the same
sizes. ``transport_floor_ms_640x480`` is what rclpy + Fast DDS cost here by themselves, and
``node_overhead_ratio_floor`` = (engine + floor) / engine the least ``node_overhead_ratio`` any
rclpy node publishing these outputs could reach on this machine.

Node and client are seg_ros.live's NodeProcess and LiveClient (seg_ros.ros.dds.local_env:
loopback discovery, a shared-memory segment that fits whole images); the node keeps its default
sensor-data (best-effort) input QoS.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seg_ros.live import OUTPUTS, LiveClient, NodeProcess, param_args, pick_domain, stamp_now
from seg_ros.live.models import camvid_frames, shipped_or_tiny_model
from seg_ros.pipeline import NODE_NAME
from seg_ros.timing import samples_ms

THREADS = 1
FRAMES = 90
ROUNDS = 9
NODE = f"/{NODE_NAME}"


def _engine(model: Any, frames: list[np.ndarray]) -> Callable[[int], list[float]]:
    """A function n -> n timings (ms) of Segmenter.infer alone, same frames and threads."""
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    seg = Segmenter(open_engine(model, threads=THREADS))
    batches = [seg.preprocess(f).copy() for f in frames]
    for b in batches[:3]:
        seg.infer(b, True)

    return lambda n: samples_ms(lambda k: seg.infer(batches[k % len(batches)], True), n)


@dataclass
class _Rounds:
    """Per-frame ms (stamp -> last output, stamp -> labels) of the raw and the deserialising
    client, the engine's ms, and per round the ratios (raw, deserialising, labels) / engine."""

    raw: list[float] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    deser: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    ratios: list[tuple[float, float, float]] = field(default_factory=list)


class _Bench:
    """One node process (or the transport floor) and the client that times it."""

    def __init__(self, model: Any, frames: list[np.ndarray], floor: bool) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from seg_ros.ros.convert import to_image_msg

        domain = pick_domain()
        module = ("-m", "benchmarks.transport_floor") if floor else ("-m", "seg_ros.cli", "node")
        args = [] if floor else param_args({"model_path": model, "threads": THREADS})
        self.proc = NodeProcess([*args, "-r", "image:=/bench/image"], domain, module=module)
        self.client = LiveClient(domain, "bench_node_client")
        self.pub = self.client.publisher(Image, "/bench/image", depth=2)
        try:
            self.client.wait_ready(self.proc, self.pub, NODE, OUTPUTS)
        except BaseException:
            self.close()
            raise
        self.msgs = [to_image_msg(f, "rgb8", Header()) for f in frames]  # built before stamping

    def once(self, collector: Any, k: int, timeout: float) -> tuple[float, float] | None:
        """Stamp and publish frame ``k``; ms from publishing to the last of its outputs and to
        its labels (None: lost). ``collector``: a RawCounter (raw CDR, no deserialisation) or a
        Collector (the client deserialising all four images into Python)."""
        msg = self.msgs[k % len(self.msgs)]
        stamp = stamp_now(msg, "bench")
        t0 = time.monotonic()
        self.pub.publish(msg)
        done = collector.wait(stamp, timeout)
        labels = collector.arrival("labels", stamp)
        if done is None or labels is None:
            return None
        return (done - t0) * 1e3, (labels - t0) * 1e3

    def round(self, raw: bool, n: int) -> list[tuple[float, float]]:
        """``n`` frames in lockstep after both ends of every topic matched."""
        collector = (self.client.count_outputs(NODE, OUTPUTS) if raw
                     else self.client.collect(NODE, OUTPUTS))
        try:
            end = time.monotonic() + 30
            while self.once(collector, 0, 0.5) is None:
                if time.monotonic() > end or not self.proc.alive():
                    raise RuntimeError(f"no outputs came back; log {self.proc.log_path}")
            for k in range(3):
                self.once(collector, k, 5.0)
            return [ms for k in range(n) if (ms := self.once(collector, k, 5.0)) is not None]
        finally:
            collector.close()

    def close(self) -> None:
        self.client.close()
        self.proc.stop()


def _measure(bench: _Bench, engine_samples: Callable[[int], list[float]], floor: bool
             ) -> _Rounds:
    """Interleaved rounds: raw client, deserialising client (not for the floor), bare engine
    with the node idle. Ratios are medians of per-round ratios: a load change between rounds
    (a shared machine) moves the node and the engine of that round alike."""
    r, per = _Rounds(), FRAMES // ROUNDS
    for _ in range(ROUNDS):
        raw = bench.round(True, per)
        deser = [] if floor else bench.round(False, per)
        eng = engine_samples(per)
        r.raw += [last for last, _ in raw]
        r.labels += [lab for _, lab in raw]
        r.deser += [last for last, _ in deser]
        r.engine += eng
        if raw and (floor or deser):
            e = statistics.median(eng)
            r.ratios.append((statistics.median(x for x, _ in raw) / e,
                             statistics.median(x for x, _ in deser or [(e, e)]) / e,
                             statistics.median(x for _, x in raw) / e))
    if len(r.raw) < FRAMES // 2:
        raise RuntimeError(f"only {len(r.raw)} of {FRAMES} frames came back; "
                           f"log {bench.proc.log_path}")
    return r


def _node_stages(client: LiveClient) -> dict[str, float]:
    """The node's own per-stage medians and receive/stamp -> done from its /diagnostics."""
    try:
        last = client.diagnostics(NODE, timeout=3.0)[2]
    except TimeoutError:
        last = {}
    stages = {k[len("stage_"):-len("_median_ms")]: float(v) for k, v in last.items()
              if k.startswith("stage_") and v != "nan"}
    for key, name in (("latency_receive_median_ms", "receive_to_done"),
                      ("latency_stamp_median_ms", "stamp_to_done")):
        if last.get(key, "nan") != "nan":
            stages[name] = float(last[key])
    return stages


def _node_ms(model: Any, frames: list[np.ndarray], engine_samples: Callable[[int], list[float]],
             floor: bool = False) -> tuple[float, float, float, dict[str, float]]:
    """Median and p90 ms stamp -> last output, the bare engine's median, and the rest (see the
    module docstring). ``floor``: the same client against benchmarks/transport_floor.py (no
    pixel work) instead of the node, raw client rounds only."""
    bench = _Bench(model, frames, floor)
    try:
        r = _measure(bench, engine_samples, floor)
        stages = _node_stages(bench.client)
    finally:
        bench.close()
    stages["client_deserialising"] = statistics.median(r.deser) if r.deser else float("nan")
    stages["ratio"] = statistics.median(x for x, _, _ in r.ratios)
    stages["ratio_deserialising"] = statistics.median(d for _, d, _ in r.ratios)
    stages["ratio_labels"] = statistics.median(lab for _, _, lab in r.ratios)
    stages["client_labels"] = statistics.median(r.labels)
    return (statistics.median(r.raw), float(np.percentile(r.raw, 90)),
            statistics.median(r.engine), stages)


def run() -> dict[str, float]:
    model = shipped_or_tiny_model()
    frames = camvid_frames()
    engine_samples = _engine(model, frames)
    node, node_p90, engine, stages = _node_ms(model, frames, engine_samples)
    deser = stages.pop("client_deserialising")
    floor, _p90, floor_engine, floor_stages = _node_ms(model, frames, engine_samples, floor=True)
    out = {
        "node_latency_ms_640x480": node,
        "node_latency_p90_ms_640x480": node_p90,
        "engine_latency_ms_640x480": engine,
        "node_overhead_ratio": stages.pop("ratio"),
        # the same frames, stamp -> ~/labels received (published first, before the pictures)
        "node_labels_latency_ms_640x480": stages.pop("client_labels"),
        "node_labels_overhead_ratio": stages.pop("ratio_labels"),
        # the same node, the client deserialising the four outputs (how it was measured before)
        "node_latency_deserialising_client_ms_640x480": deser,
        "node_overhead_ratio_deserialising_client": stages.pop("ratio_deserialising"),
        # no pixel work, only the image in and four outputs out (benchmarks/transport_floor.py)
        "transport_floor_ms_640x480": floor,
        "transport_floor_labels_ms_640x480": floor_stages["client_labels"],
        # the least node_overhead_ratio an rclpy node publishing these outputs can reach here
        "node_overhead_ratio_floor": (floor_engine + floor) / floor_engine,
        # what the node adds beyond the engine and the transport (pre/post-process, render)
        "node_overhead_above_floor_ms": node - engine - floor,
    }
    # inside the node (from /diagnostics): per-stage medians and receive -> published (worker)
    out.update({f"node_stage_{k}_ms_640x480": v for k, v in stages.items()})
    if "worker" in stages and "engine" in stages:
        out["node_worker_over_engine"] = stages["worker"] / stages["engine"]
    return out


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:<32} {value:.3f}")
