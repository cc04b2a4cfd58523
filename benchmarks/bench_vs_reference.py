"""seg_ros's node side by side with the node a user would write (benchmarks/reference_node.py).

Every node gets the whole machine (2 cores here) and is set up the way its user would for the
figure at hand; the reference is given its better thread count for each figure:

* seg_ros for throughput: ``threads:=1 workers:=2`` (two frames at once, one core each);
* seg_ros for latency: ``threads:=2 workers:=1`` (one frame, both cores);
* the reference with ``threads:=1`` and with ``threads:=2``: the ratios use whichever of the
  two did better on that figure (``reference_*``); both are reported.

All run as real processes at the same time in one private ROS domain, same model, every output
(labels, confidence, colour mask, overlay) subscribed by a client that takes them raw on intake
threads (no client-side deserialisation, no executor). Measurements are interleaved: each round
drives every node in turn on its own input topic, so a load change on the shared machine hits
all alike; figures are medians over rounds.

* throughput: rgb8 frames flooded at FLOOD_HZ for ROUND_S; outputs per second = frames whose
  four outputs all arrived / time. At 640x480 (the ratio) and 1280x720.
* latency: frames at a camera's cadence (CAMERA_HZ, each once the previous one's four outputs
  arrived), publish -> last output, median; each node gets its block of frames in turn, every
  round. How long a node idled before a frame matters on this (virtual) machine: after 100 ms
  idle both nodes take ~30 ms, back to back seg_ros 19.6 and the reference 25.6 ms
  (benchmarks/README.md), so the probes keep a real camera's gaps.
"""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

import cv2

from seg_ros.live import (
    OUTPUTS,
    LiveClient,
    NodeProcess,
    ask,
    param_args,
    pick_domain,
    stream,
    wait_for,
)
from seg_ros.live.models import camvid_frames, shipped_or_tiny_model

ROUNDS = 5
ROUND_S = 3.0
FLOOD_HZ = {"640x480": 100.0, "1280x720": 50.0}
LATENCY_FRAMES = 10
CAMERA_HZ = 20.0  # latency probes: frames at a camera's cadence (idle time between them)
SEG_THR, SEG_LAT = "/seg_throughput", "/seg_latency"
REF1, REF2 = "/reference_1thread", "/reference_2threads"
SETUP = {  # node -> (parameters, is the reference)
    SEG_THR: ({"threads": 1, "workers": 2}, False),
    SEG_LAT: ({"threads": 2, "workers": 1}, False),
    REF1: ({"threads": 1}, True),
    REF2: ({"threads": 2}, True),
}


def _flood(pub: Any, msgs: list[Any], counter: Any, hz: float, secs: float) -> float:
    """Outputs per second while flooding (complete output sets of frames sent in the window)."""
    t0 = time.monotonic()
    sent = stream(pub, msgs, hz, secs, "bench")
    t_end = time.monotonic()
    time.sleep(0.05)
    done = [t for s, t in counter.complete() if s in sent and t <= t_end]
    return len(done) / (t_end - t0)


def _latency(pub: Any, msgs: list[Any], counter: Any) -> float | None:
    return ask(pub, msgs[time.monotonic_ns() % len(msgs)], counter, 5.0, "bench")


def run() -> dict[str, float]:
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.ros.convert import to_image_msg

    model = shipped_or_tiny_model()
    domain = pick_domain()
    nodes = {}
    for n, (values, ref) in SETUP.items():
        args = [*param_args({"model_path": model, **values}), "-r", f"image:={n}_in/image",
                *(("-r", f"__node:={n[1:]}") if ref else ())]
        nodes[n] = (NodeProcess(args, domain, n[1:], ("-m", "benchmarks.reference_node"))
                    if ref else NodeProcess(args, domain, n[1:]))
    client = LiveClient(domain)
    try:
        pubs = {n: client.publisher(Image, f"{n}_in/image", depth=1) for n in nodes}
        counters = {n: client.count_outputs(n, OUTPUTS) for n in nodes}
        frames = camvid_frames(4)
        msgs = {"640x480": [to_image_msg(f, "rgb8", Header()) for f in frames],
                "1280x720": [to_image_msg(cv2.resize(f, (1280, 720)), "rgb8", Header())
                             for f in frames]}
        for n, proc in nodes.items():
            client.wait_ready(proc, pubs[n], n, OUTPUTS)
        for n in nodes:  # matched both ways and warm
            wait_for(partial(_latency, pubs[n], msgs["640x480"], counters[n]), 30,
                     f"{n} to answer")
            for _ in range(3):
                _latency(pubs[n], msgs["640x480"], counters[n])
        lat: dict[str, list[float]] = {n: [] for n in nodes}
        for _ in range(ROUNDS):
            for n in (SEG_LAT, REF1, REF2):
                t0 = time.monotonic()
                for k in range(LATENCY_FRAMES):  # a camera at CAMERA_HZ, one frame at a time
                    ms = _latency(pubs[n], msgs["640x480"], counters[n])
                    if ms is not None:
                        lat[n].append(ms)
                    time.sleep(max(0.0, t0 + (k + 1) / CAMERA_HZ - time.monotonic()))
        thr: dict[tuple[str, str], list[float]] = {}
        for size, hz in FLOOD_HZ.items():
            for _ in range(ROUNDS):
                for n in nodes:
                    thr.setdefault((n, size), []).append(
                        _flood(pubs[n], msgs[size], counters[n], hz, ROUND_S))
                    time.sleep(1.0)  # let the reference drain its queue before the next round
    finally:
        client.close()
        for proc in nodes.values():
            proc.stop()
    med = {k: statistics.median(v) for k, v in thr.items()}
    lat_ms = {n: statistics.median(v) for n, v in lat.items() if v}
    out: dict[str, float] = {}
    for size in FLOOD_HZ:
        ref_hz = max(med[(REF1, size)], med[(REF2, size)])
        out[f"throughput_hz_{size}"] = med[(SEG_THR, size)]
        out[f"throughput_hz_{size}_latency_setup"] = med[(SEG_LAT, size)]
        out[f"reference_throughput_hz_{size}"] = ref_hz
        out[f"reference_1thread_throughput_hz_{size}"] = med[(REF1, size)]
        out[f"reference_2threads_throughput_hz_{size}"] = med[(REF2, size)]
        key = "vs_reference_throughput_ratio" + ("" if size == "640x480" else f"_{size}")
        out[key] = med[(SEG_THR, size)] / ref_hz
    ref_lat = min(lat_ms[REF1], lat_ms[REF2])
    out.update({
        "latency_ms_640x480": lat_ms[SEG_LAT],
        "reference_latency_ms_640x480": ref_lat,
        "reference_1thread_latency_ms_640x480": lat_ms[REF1],
        "reference_2threads_latency_ms_640x480": lat_ms[REF2],
        "vs_reference_latency_ratio": lat_ms[SEG_LAT] / ref_lat,
    })
    return out


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:<40} {value:.3f}")
