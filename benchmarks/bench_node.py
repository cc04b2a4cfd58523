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

All processes use seg_ros.ros.dds.local_env (loopback discovery, a shared-memory segment that
fits whole images); the node keeps its default sensor-data (best-effort) input QoS.
"""

from __future__ import annotations

import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.liveproc import param_args, stamp_now
from seg_ros.ros.dds import local_env, use_local_env
from seg_ros.ros.memory import keep_large_buffers

REPO = Path(__file__).resolve().parents[1]
THREADS = 1
FRAMES = 90
ROUNDS = 9
OUTPUTS = ("labels", "confidence", "color_mask", "overlay")


def _model() -> Path:
    shipped = REPO / "models" / "camvid.onnx"
    if shipped.is_file():
        return shipped
    sys.path.insert(0, str(REPO / "test"))
    from conftest import make_tiny_model

    return make_tiny_model(Path(tempfile.mkdtemp()) / "tiny.onnx", input_size=(360, 480))


def _frames(n: int = 8) -> list[np.ndarray]:
    """Real CamVid frames at 640x480 when the data set is there, else smooth noise."""
    camvid = Path(os.environ.get("SEG_ROS_CAMVID", REPO.parent / "shared" / "datasets" /
                                 "camvid")) / "val"
    paths = sorted(camvid.glob("*.png"))[:n] if camvid.is_dir() else []
    if paths:
        return [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (640, 480))
                for p in paths]
    rng = np.random.default_rng(0)
    return [cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 5)
            for _ in range(n)]


def _engine(model: Path, frames: list[np.ndarray]) -> Any:
    """A function n -> n timings (ms) of Segmenter.infer alone, same frames and threads."""
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    seg = Segmenter(open_engine(model, threads=THREADS))
    batches = [seg.preprocess(f).copy() for f in frames]
    for b in batches[:3]:
        seg.infer(b, True)

    def samples(n: int) -> list[float]:
        out = []
        for k in range(n):
            t0 = time.perf_counter()
            seg.infer(batches[k % len(batches)], True)
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    return samples


def _node_ms(model: Path, frames: list[np.ndarray], engine_samples: Any, floor: bool = False
             ) -> tuple[float, float, float, dict[str, float]]:
    """Median and p90 ms stamp -> last output, the bare engine's median, and the rest (see the
    module docstring). ``floor``: the same client against benchmarks/transport_floor.py (no
    pixel work) instead of the node, raw client rounds only."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.ros.convert import to_image_msg

    domain = random.Random(os.getpid() ^ time.time_ns()).randint(101, 200)
    use_local_env(domain)  # this process and the node: same transports
    keep_large_buffers()  # the client is a camera driver, not the node under test
    env = local_env(domain)
    cmd = ([sys.executable, "-m", "benchmarks.transport_floor", "--ros-args"] if floor else
           [sys.executable, "-m", "seg_ros.cli", "node", "--ros-args",
            *param_args({"model_path": model, "threads": THREADS})])
    cmd += ["-r", "image:=/bench/image"]
    log = tempfile.NamedTemporaryFile(prefix="bench_node_", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    try:
        node = rclpy.create_node("bench_node_client", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, "/bench/image", qos)
        got: dict[str, tuple[int, int]] = {}  # output -> (stamp ns, receive ns)

        def on_raw(name: str, raw: bytes) -> None:
            # raw=True: the serialised CDR message, not deserialised into Python (the client
            # would otherwise pay four image copies per frame inside the measured latency);
            # after the 4-byte encapsulation header comes header.stamp (int32 sec, uint32 ns).
            sec, nsec = struct.unpack_from("<iI", raw, 4)
            got[name] = (sec * 10**9 + nsec, time.time_ns())

        def on_msg(name: str, msg: Image) -> None:  # the client as it was: deserialised
            got[name] = (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
                         time.time_ns())

        def subscribe(raw: bool) -> list:
            cb = on_raw if raw else on_msg
            return [node.create_subscription(Image, f"/segmentation_node/{o}",
                                             lambda m, o=o: cb(o, m), qos, raw=raw)
                    for o in OUTPUTS]

        subs = subscribe(True)
        subs_raw = [True]
        diag: list[dict[str, str]] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.extend(
            {kv.key: kv.value for kv in st.values} for st in m.status
            if st.hardware_id == "/segmentation_node"), 10)
        end = time.monotonic() + 60
        while not (pub.get_subscription_count() and all(
                node.count_publishers(f"/segmentation_node/{o}") for o in OUTPUTS)):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"node did not start; log {log.name}")
            ex.spin_once(timeout_sec=0.1)

        msgs = [to_image_msg(f, "rgb8", Header()) for f in frames]  # built before stamping

        def once(msg: Image, timeout: float) -> tuple[float, float] | None:
            """Stamp and publish ``msg``; ms from its stamp to the last of its outputs and to
            its labels (None: lost)."""
            stamp = stamp_now(msg, "bench")
            pub.publish(msg)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.005)
                if all(got.get(o, (0, 0))[0] == stamp for o in OUTPUTS):
                    return ((max(got[o][1] for o in OUTPUTS) - stamp) / 1e6,
                            (got["labels"][1] - stamp) / 1e6)
            return None

        def matched() -> None:
            end = time.monotonic() + 30  # until both ends of every topic matched
            while once(msgs[0], 0.5) is None:
                if time.monotonic() > end:
                    raise RuntimeError(f"no outputs came back; log {log.name}")
            for k in range(3):
                once(msgs[k % len(msgs)], 5.0)

        # Interleaved rounds: raw client, deserialising client, bare engine (node idle).
        samples: list[float] = []
        labels: list[float] = []
        deser: list[float] = []
        engine: list[float] = []
        # per round: (raw, deserialising, raw labels) / engine
        ratios: list[tuple[float, float, float]] = []
        per = FRAMES // ROUNDS
        for _ in range(ROUNDS):
            got_round: dict[bool, list[tuple[float, float]]] = {}
            for raw, into in ((True, samples), (False, deser))[:1 if floor else 2]:
                if raw != subs_raw[0]:
                    for sub in subs:
                        node.destroy_subscription(sub)
                    subs = subscribe(raw)
                    subs_raw[0] = raw
                matched()
                got_round[raw] = [ms for k in range(per)
                                  if (ms := once(msgs[k % len(msgs)], 5.0)) is not None]
                into += [last for last, _ in got_round[raw]]
                if raw:
                    labels += [lab for _, lab in got_round[raw]]
            eng = engine_samples(per)
            engine += eng
            if got_round[True] and (floor or got_round[False]):
                e = statistics.median(eng)
                deser_round = got_round.get(False) or [(e, e)]  # the floor: no such rounds
                ratios.append((statistics.median(x for x, _ in got_round[True]) / e,
                               statistics.median(x for x, _ in deser_round) / e,
                               statistics.median(x for _, x in got_round[True]) / e))
        if len(samples) < FRAMES // 2:
            raise RuntimeError(f"only {len(samples)} of {FRAMES} frames came back; log {log.name}")
        n_diag, end = len(diag), time.monotonic() + 3
        while len(diag) == n_diag and time.monotonic() < end:  # the node's own stage times
            ex.spin_once(timeout_sec=0.1)
        last = diag[-1] if diag else {}
        stages = {k[len("stage_"):-len("_median_ms")]: float(v) for k, v in last.items()
                  if k.startswith("stage_") and v != "nan"}
        for key, name in (("latency_receive_median_ms", "receive_to_done"),
                          ("latency_stamp_median_ms", "stamp_to_done")):
            if last.get(key, "nan") != "nan":
                stages[name] = float(last[key])
        stages["client_deserialising"] = statistics.median(deser) if deser else float("nan")
        # the ratios as medians of per-round ratios: a load change between rounds (a shared
        # machine) moves the node and the engine of that round alike
        stages["ratio"] = statistics.median(r for r, _, _ in ratios)
        stages["ratio_deserialising"] = statistics.median(d for _, d, _ in ratios)
        stages["ratio_labels"] = statistics.median(lab for _, _, lab in ratios)
        stages["client_labels"] = statistics.median(labels)
        return (statistics.median(samples), float(np.percentile(samples, 90)),
                statistics.median(engine), stages)
    finally:
        proc.send_signal(2)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        rclpy.try_shutdown(context=ctx)
        log.close()


def run() -> dict[str, float]:
    model = _model()
    frames = _frames()
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
