"""Bag -> a REAL segmentation node process -> mIoU, latency, throughput and drops.

``evaluate_bag`` starts ``seg-ros node`` as a subprocess in a private ROS domain (loopback only,
Fast DDS LARGE_DATA), publishes the bag's frames (and camera info) to it over real topics,
matches the ``/segmentation_node/labels`` it publishes back to the bag's ground truth by header
stamp, and scores them with :mod:`seg_ros.metrics`.

Pacing:
* lockstep (default): the next frame is published only after the previous frame's labels came
  back (or ``timeout`` passed), so a healthy node drops nothing and mIoU covers every frame;
* ``rate=X``: frames go out at X times the bag's real time, like ``bag play``; the node's
  one-slot mailbox then drops what it cannot keep up with.

Every input frame is accounted for: ``matched`` (labels with its stamp arrived), ``dropped``
(the node says so: the increase of the dropped counter in its /diagnostics) or ``missing``
(neither: lost in transport, or the node failed silently). Latency is measured in this process
from just before ``publish`` to the labels' arrival (monotonic clock), so it includes DDS
transport both ways, decode, inference and encode.

Recording the outputs (``out_bag``) subscribes every output, so the node also computes and
ships confidence, colour mask and overlay (~1.4 MB a 480x360 frame, against Fast DDS's 512 KB
shared-memory segment): the extra outputs are taken best effort (a few may be missing from the
bag, counted in ``out_bag_counts``) and the latency figures of such a run are not comparable.
Latched outputs (~/label_info) are subscribed transient-local, and every topic's offered QoS goes
into the bag's metadata.yaml. The warm-up frame's outputs are not recorded: the bag holds the
outputs of the input bag's frames only.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.bag import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    IMAGE_TYPES,
    LABELS_SUFFIX,
    BagError,
    deserialize,
    find_topic,
    header_stamp_ns,
    image_from_msg,
    iter_raw,
    open_reader,
    stamp_ns,
)
from seg_ros.ros.dds import use_local_env
from seg_ros.ros.process import NodeProcess

NODE_NAME = "segmentation_node"
LABELS_TOPIC = f"/{NODE_NAME}/labels"
GRID_TOPIC = f"/{NODE_NAME}/floor_grid"
DIAGNOSTICS = "/diagnostics"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"


@dataclass
class Frame:
    """One input frame of the bag."""

    stamp: int                 # header stamp, ns (the key outputs are matched by)
    t_bag: int                 # bag timestamp, ns (pacing)
    raw: bytes                 # the image message as CDR, published unchanged
    info_raw: bytes | None     # camera info with the same stamp (or the latest before)
    truth: np.ndarray | None   # ground-truth class ids (H, W)
    size: tuple[int, int]      # (H, W) of the image


@dataclass
class BagFrames:
    frames: list[Frame]
    image_topic: str
    image_type: str
    info_topic: str | None
    labels_topic: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def load_frames(bag: str | Path, image_topic: str | None = None,
                labels_topic: str | None = None) -> BagFrames:
    """Read the frames, camera info and ground truth of ``bag`` (ROS-free; rosbags only)."""
    reader = open_reader(bag)
    source = str(bag)
    try:
        img_c = find_topic(reader, IMAGE_TYPES, source, image_topic, exclude=LABELS_SUFFIX)
        lab_c = None
        if labels_topic is not None:
            lab_c = find_topic(reader, IMAGE_TYPES, source, labels_topic, what="labels")
        else:
            cands = [c for c in reader.connections
                     if c.msgtype in IMAGE_TYPES and LABELS_SUFFIX in c.topic]
            lab_c = cands[0] if cands else None
        infos = [c for c in reader.connections if c.msgtype == CAMERA_INFO]
        info_c = infos[0] if infos else None
        conns = [c for c in (img_c, lab_c, info_c) if c is not None]

        images: list[tuple[int, int, bytes, tuple[int, int]]] = []
        truths: dict[int, np.ndarray] = {}
        info_by_stamp: dict[int, bytes] = {}
        for conn, t, raw in iter_raw(reader, conns, source):
            raw = bytes(raw)
            msg = deserialize(raw, conn.msgtype, f"{source} {conn.topic}")
            s = stamp_ns(msg.header)
            if conn is img_c:
                size = _image_size(msg, conn.msgtype)
                images.append((s, t, raw, size))
            elif conn is lab_c:
                truths[s] = image_from_msg(msg, conn.msgtype, keep_ids=True)
            else:
                info_by_stamp[s] = raw
    finally:
        reader.close()
    if not images:
        raise BagError(f"bag {source}: {img_c.topic} holds no messages: nothing to evaluate")

    frames: list[Frame] = []
    info_stamps = sorted(info_by_stamp)
    for s, t, raw, size in images:
        truth = truths.get(s)
        if truth is not None and truth.shape != size:
            raise BagError(
                f"bag {source}: labels on {lab_c.topic} at stamp {s / 1e9:.3f} are "
                f"{truth.shape[1]}x{truth.shape[0]} but the image on {img_c.topic} is "
                f"{size[1]}x{size[0]}: ground truth must match its frame pixel for pixel "
                "(re-make the bag from label maps of the frames' size)"
            )
        info = info_by_stamp.get(s)
        if info is None and info_stamps:
            i = int(np.searchsorted(info_stamps, s, side="right")) - 1
            info = info_by_stamp[info_stamps[max(i, 0)]]
        frames.append(Frame(s, t, raw, info, truth, size))
    if len({f.stamp for f in frames}) != len(frames):
        raise BagError(
            f"bag {source}: several frames on {img_c.topic} share a header stamp, so outputs "
            "cannot be matched to inputs: give every frame its own stamp"
        )
    return BagFrames(frames, img_c.topic, img_c.msgtype, info_c.topic if info_c else None,
                     lab_c.topic if lab_c else None,
                     {"truth_frames": sum(f.truth is not None for f in frames)})


def _image_size(msg: Any, msgtype: str) -> tuple[int, int]:
    if msgtype == IMAGE:
        return int(msg.height), int(msg.width)
    import cv2

    buf = np.frombuffer(memoryview(msg.data), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BagError(f"a compressed frame ({msg.format!r}) does not decode: corrupt bag")
    return int(img.shape[0]), int(img.shape[1])


# --------------------------------------------------------------------------- node process


def _start_node(model: str | Path, domain_id: int, image_topic: str, compressed: bool,
                info_topic: str | None, params: list[str], log_path: Path,
                params_file: str | Path | None = None) -> NodeProcess:
    """``seg-ros node`` on the bag's topics, in its own session (stopped by us, not Ctrl-C)."""
    base = image_topic[: -len("/compressed")] if compressed else image_topic
    # --params-file goes first: the -p below (model, transport, --node-arg) override it
    args = ["--params-file", str(Path(params_file).resolve())] if params_file else []
    ros_args = ["-r", f"__node:={NODE_NAME}",
                "-p", f"model_path:={Path(model).resolve()}",
                "-r", f"image:={base}", "-r", f"image/compressed:={base}/compressed"]
    if info_topic:
        ros_args += ["-r", f"camera_info:={info_topic}"]
    if compressed:
        ros_args += ["-p", "input_transport:=compressed"]
    for p in params:
        ros_args += ["-p", p]
    return NodeProcess(ros_args, domain_id, NODE_NAME, args=args, log_path=log_path,
                       new_session=True)


def _free_domain() -> int:
    """A ROS domain id for this run: not the caller's, random so parallel runs rarely meet."""
    own = os.environ.get("ROS_DOMAIN_ID", "0")
    rng = random.Random(os.getpid() ^ time.time_ns())
    while True:
        d = rng.randint(1, 100)
        if str(d) != own:
            return d


# --------------------------------------------------------------------------- evaluation


@dataclass
class _Run:
    pub_time: dict[int, float] = field(default_factory=dict)       # stamp -> monotonic
    recv: dict[int, tuple[float, np.ndarray]] = field(default_factory=dict)
    unexpected: int = 0
    grids: dict[int, Any] = field(default_factory=dict)             # stamp -> OccupancyGrid
    diag: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    last_output: float = 0.0


def evaluate_bag(
    bag: str | Path,
    model: str | Path,
    out_bag: str | Path | None = None,
    rate: float | None = None,
    png: str | Path | None = None,
    image_topic: str | None = None,
    labels_topic: str | None = None,
    timeout: float = 10.0,
    node_params: list[str] | None = None,
    startup_timeout: float = 90.0,
    progress: bool = True,
    log_dir: str | Path | None = None,
    params_file: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``bag`` through a real node; returns the report as a JSON-able dict.

    Args:
        rate: None = lockstep; X = publish at X times the bag's real time.
        timeout: lockstep: seconds to wait for one frame's labels before moving on.
        node_params: extra ``name:=value`` node parameters.
        params_file: node parameters YAML (e.g. config/camvid.yaml: its camera_pose and grid.*
            make the node publish ~/floor_grid for the contact sheet); ``node_params`` win.
    """
    from seg_ros.model_card import read_card

    data = load_frames(bag, image_topic, labels_topic)
    if data.labels_topic is None or data.meta["truth_frames"] == 0:
        raise BagError(
            f"bag {bag} has no ground-truth labels topic (*{LABELS_SUFFIX}*, mono8 Image or PNG "
            "CompressedImage) matching its frames: make it with `seg-ros bag make --labels DIR`"
            " or name it with --labels-topic"
        )
    if rate is not None and not rate > 0:
        raise BagError(f"--rate {rate} must be > 0 (leave it out for lockstep)")
    card = read_card(model)  # fails fast, before starting a node, on a bad model path
    if out_bag is not None and Path(out_bag).exists():
        raise BagError(f"{out_bag} exists already: choose another --out or delete it first")

    domain = _free_domain()
    log_dir = Path(log_dir) if log_dir else Path(png).parent if png else Path(tempfile.mkdtemp(
        prefix="seg_ros_eval_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    compressed = data.image_type == COMPRESSED
    use_local_env()
    node_proc = _start_node(model, domain, data.image_topic, compressed, data.info_topic,
                            node_params or [], log_dir / "node.log", params_file)
    writer = None
    try:
        from seg_ros.bag.rosio import RawBagWriter

        if out_bag is not None:
            writer = RawBagWriter(out_bag)
        run, timing, outputs = _drive(data, node_proc, domain, rate, timeout, startup_timeout,
                                      writer, want_grid=png is not None or writer is not None,
                                      progress=progress)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        node_proc.stop(10.0)

    report = _report(data, run, timing, card, rate, model, bag)
    report["node"] = {"command": " ".join(node_proc.args), "log": str(node_proc.log_path),
                      "domain_id": domain, "outputs": outputs}
    if writer is not None:
        report["out_bag"] = str(out_bag)
        report["out_bag_counts"] = dict(writer.counts)
    if png is not None:
        from seg_ros.bag.sheet import contact_sheet

        contact_sheet(data, run.recv, run.grids, card, png, report)
        report["png"] = str(png)
    return report


def _drive(data: BagFrames, node_proc: NodeProcess, domain: int, rate: float | None,
           timeout: float, startup_timeout: float, writer: Any, want_grid: bool,
           progress: bool) -> tuple[_Run, dict[str, float], list[str]]:
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from tqdm import tqdm

    from seg_ros.bag.rosio import is_latched, matching_qos, offered_qos, qos, ros_node

    run = _Run()
    frames = data.frames
    warm: dict[int, float] = {}  # warm-up stamp -> arrival of its labels (0: not yet)
    stamps = {f.stamp for f in frames}
    with ros_node("seg_ros_bag_eval", domain) as (node, executor):
        img_pub = node.create_publisher(CompressedImage if data.image_type == COMPRESSED
                                        else Image, data.image_topic, qos(depth=10))
        info_pub = (node.create_publisher(CameraInfo, data.info_topic, qos(depth=10))
                    if data.info_topic else None)

        def record(topic: str, msgtype: str, raw: bytes) -> None:
            """Into the output bag, unless it is an output of a warm-up frame."""
            if writer is not None and header_stamp_ns(raw) not in warm:
                writer.write(topic, msgtype, time.time_ns(), raw)

        def on_labels(raw: bytes) -> None:
            now = time.monotonic()
            msg = deserialize(raw, IMAGE, LABELS_TOPIC)
            s = stamp_ns(msg.header)
            if s in warm:
                warm[s] = now
                return
            run.last_output = now
            record(LABELS_TOPIC, IMAGE, raw)
            if s in stamps and s not in run.recv:
                run.recv[s] = (now, image_from_msg(msg, IMAGE, keep_ids=True))
            else:
                run.unexpected += 1

        def on_diag(raw: bytes) -> None:
            record(DIAGNOSTICS, DIAGNOSTIC_ARRAY, raw)
            msg = deserialize(raw, DIAGNOSTIC_ARRAY, DIAGNOSTICS)
            for st in msg.status:
                if NODE_NAME in st.name or NODE_NAME in st.hardware_id:
                    run.diag.append((time.monotonic(), {kv.key: kv.value for kv in st.values}))

        def on_grid(raw: bytes) -> None:
            record(GRID_TOPIC, OCCUPANCY_GRID, raw)
            msg = deserialize(raw, OCCUPANCY_GRID, GRID_TOPIC)
            run.grids[stamp_ns(msg.header)] = msg

        subs: dict[str, Any] = {}

        def subscribe(topic: str, msgtype: str, callback: Any, qos_profile: Any) -> None:
            if writer is not None:
                writer.declare(topic, msgtype, offered_qos(node, topic))
            subs[topic] = node.create_subscription(_msg_class(msgtype), topic, callback,
                                                   qos_profile, raw=True)

        def subscribe_outputs() -> None:
            """Subscribe the node's outputs once they are in the graph, with the QoS they offer
            (reliable when the node publishes reliable: best effort would lose frames)."""
            wanted = [(LABELS_TOPIC, IMAGE, on_labels), (DIAGNOSTICS, DIAGNOSTIC_ARRAY, on_diag)]
            if want_grid:
                wanted.append((GRID_TOPIC, OCCUPANCY_GRID, on_grid))
            for topic, msgtype, cb in wanted:
                if topic not in subs and node.count_publishers(topic) > 0:
                    subscribe(topic, msgtype, cb, matching_qos(node, topic))

        # Wait until the node is up: it subscribes our images and publishes labels.
        t0 = time.monotonic()

        def check_alive() -> None:
            if not node_proc.alive():
                raise BagError(
                    f"the node exited (code {node_proc.proc.returncode}, log "
                    f"{node_proc.log_path}):\n{node_proc.tail()}"
                )

        def ready() -> bool:
            subscribe_outputs()
            return (img_pub.get_subscription_count() > 0 and LABELS_TOPIC in subs
                    and subs[LABELS_TOPIC].get_publisher_count() > 0
                    and NODE_NAME in node.get_node_names())

        while not ready():
            check_alive()
            if time.monotonic() - t0 > startup_timeout:
                raise BagError(
                    f"the node did not subscribe {data.image_topic} and publish {LABELS_TOPIC} "
                    f"within {startup_timeout:.0f} s (log {node_proc.log_path}):\n"
                    f"{node_proc.tail()}"
                )
            executor.spin_once(timeout_sec=0.1)
        try:
            published = node.get_publisher_names_and_types_by_node(NODE_NAME, "/")
        except Exception:  # the graph lags: the node's name may not be listed yet
            published = []
        outputs = sorted(t for t, _ in published)
        # Record every other output of the node too when asked (this makes it compute them):
        # images best effort (never stalls the node's writers), latched topics as offered
        # (transient-local: ~/label_info was published before we joined).
        if writer is not None:
            for topic, types in published:
                if topic in subs or not topic.startswith(f"/{NODE_NAME}/"):
                    continue
                subscribe(topic, types[0], lambda raw, t=topic, ty=types[0]: record(t, ty, raw),
                          matching_qos(node, topic, 10) if is_latched(node, topic)
                          else qos(False, 10))

        def publish(f: Frame) -> None:
            if info_pub is not None and f.info_raw is not None:
                info_pub.publish(f.info_raw)
            run.pub_time[f.stamp] = time.monotonic()
            img_pub.publish(f.raw)

        # Warm-up: the graph can list a subscription before its reader accepts our writer, and
        # the first inference is slow. Send the first frame under stamps of its own (1 s before
        # the bag) until one comes back; its outputs are not scored.
        first = frames[0]
        next_try = 0.0
        while not any(warm.values()):
            check_alive()
            now = time.monotonic()
            if now - t0 > startup_timeout:
                raise BagError(
                    f"the node took no frame on {data.image_topic} within {startup_timeout:.0f}"
                    f" s (log {node_proc.log_path}):\n{node_proc.tail()}"
                )
            if now >= next_try:
                subscribe_outputs()
                stamp = first.stamp - 1_000_000_000 - len(warm)
                warm[stamp] = 0.0
                info = (None if first.info_raw is None
                        else _restamp(first.info_raw, CAMERA_INFO, stamp))
                publish(Frame(stamp, first.t_bag, _restamp(first.raw, data.image_type, stamp),
                              info, None, first.size))
                next_try = now + 1.0
            executor.spin_once(timeout_sec=0.01)
        startup_s = time.monotonic() - t0
        # A diagnostics status from after the warm-up is the baseline of the node's counters.
        subscribe_outputs()
        t_warm = time.monotonic()
        while time.monotonic() - t_warm < 2.5 and not any(t > t_warm for t, _ in run.diag):
            executor.spin_once(timeout_sec=0.05)
        run.pub_time.clear()

        bar = tqdm(total=len(frames), desc="bag eval", unit="frame", disable=not progress)
        t_start = time.monotonic()
        if rate is None:  # lockstep
            for f in frames:
                publish(f)
                deadline = time.monotonic() + timeout
                while f.stamp not in run.recv and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.01)
                    check_alive()
                bar.update()
        else:
            bag0 = frames[0].t_bag
            for f in frames:
                due = t_start + (f.t_bag - bag0) / 1e9 / rate
                while time.monotonic() < due:
                    executor.spin_once(timeout_sec=max(0.0, min(0.005, due - time.monotonic())))
                publish(f)
                check_alive()
                bar.update()
        t_last_pub = time.monotonic()
        # Drain: outputs still in flight, then one fresh diagnostics message for the counters.
        quiet, hard = 1.5, t_last_pub + max(timeout, 5.0)
        while time.monotonic() < hard and len(run.recv) < len(frames):
            executor.spin_once(timeout_sec=0.02)
            if time.monotonic() - max(run.last_output, t_last_pub) > quiet:
                break
        t_end = time.monotonic()
        diag_deadline = t_end + 3.0
        while time.monotonic() < diag_deadline:
            if any(t > t_end for t, _ in run.diag):
                break
            executor.spin_once(timeout_sec=0.05)
        bar.close()
    timing = {"startup_s": startup_s, "t_start": t_start, "t_last_pub": t_last_pub,
              "t_end": t_end}
    return run, timing, outputs


def _restamp(raw: bytes, msgtype: str, stamp: int) -> bytes:
    """The message ``raw`` with its header stamp set to ``stamp`` (ns)."""
    from seg_ros.bag import typestore

    ts = typestore()
    msg = ts.deserialize_cdr(raw, msgtype)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return bytes(ts.serialize_cdr(msg, msgtype))


def _msg_class(msgtype: str) -> Any:
    from seg_ros.bag.rosio import msg_class

    return msg_class(msgtype)


# /diagnostics keys of the node's counters (cumulative since it started): frames it dropped
# (one-slot mailbox overwritten), rejected (undecodable), failed (engine error) or skipped as
# idle (no output subscribed yet).
COUNTERS = {"dropped": "frames_dropped", "rejected": "frames_rejected",
            "failed": "frames_failed", "idle": "frames_idle",
            "received": "frames_received", "processed": "frames_processed"}


def _counters(values: dict[str, str]) -> dict[str, int]:
    out = {}
    for name, key in COUNTERS.items():
        try:
            out[name] = int(values[key])
        except (KeyError, ValueError):
            continue
    return out


def _report(data: BagFrames, run: _Run, timing: dict[str, float], card: Any,
            rate: float | None, model: str | Path, bag: str | Path) -> dict[str, Any]:
    from seg_ros import metrics

    frames = data.frames
    n = len(frames)
    matched = [f for f in frames if f.stamp in run.recv]
    unmatched = n - len(matched)

    # The node's own account of the frames it did not answer, from its /diagnostics counters.
    # They count from node start; nothing reached it before our first frame, but take the
    # difference to a status sent before the run anyway.
    node_counts: dict[str, int] = {}
    if run.diag:
        last = _counters(run.diag[-1][1])
        before = [v for t, v in run.diag if t < timing["t_start"]]
        base = _counters(before[-1]) if before else {}
        node_counts = {k: v - base.get(k, 0) for k, v in last.items()}
    left = unmatched
    accounted: dict[str, int] = {}
    for k in ("dropped", "rejected", "failed", "idle"):
        accounted[k] = min(node_counts.get(k, 0), left)
        left -= accounted[k]
    missing = left
    # Of the missing, how many never reached the node's subscription callback (lost in DDS:
    # e.g. overwritten in a depth-1 reader queue, which no node counter can see).
    never_received = (min(missing, max(0, n - node_counts["received"]))
                      if "received" in node_counts else None)

    # class groups: the node publishes group ids, so the truth is scored in groups too
    truth_lut = None if card.groups is None else np.array(card.groups.truth_table(), np.uint8)
    card = card.grouped()
    meter = metrics.ConfusionMeter(card.num_classes, card.ignore_index)
    scored = 0
    for f in matched:
        if f.truth is None:
            continue
        pred = run.recv[f.stamp][1]
        if pred.shape != f.truth.shape:
            raise BagError(
                f"the node published {pred.shape[1]}x{pred.shape[0]} labels for a "
                f"{f.size[1]}x{f.size[0]} frame (stamp {f.stamp / 1e9:.3f}): labels must come "
                "back at the input size; this is a node bug"
            )
        meter.update(pred, f.truth if truth_lut is None else truth_lut[f.truth])
        scored += 1
    cm = meter.compute()
    summ = metrics.summary(cm, list(card.class_names))

    lat = np.array([(run.recv[f.stamp][0] - run.pub_time[f.stamp]) * 1e3 for f in matched])
    recv_times = [run.recv[f.stamp][0] for f in matched]
    span = (max(recv_times) - timing["t_start"]) if recv_times else 0.0
    report: dict[str, Any] = {
        "bag": str(bag),
        "model": str(model),
        "model_name": card.name,
        "image_topic": data.image_topic,
        "labels_topic": data.labels_topic,
        "pacing": "lockstep" if rate is None else f"rate x{rate:g}",
        "frames": n,
        "matched": len(matched),
        "dropped": accounted["dropped"],
        "rejected": accounted["rejected"] + accounted["failed"] + accounted["idle"],
        "missing": missing,
        "missing_never_received": never_received,
        "scored": scored,
        "rejected_detail": {k: accounted[k] for k in ("rejected", "failed", "idle")},
        "node_counters": node_counts,
        "latency_per_frame_ms": [round(float(v), 2) for v in lat],
        "missing_stamps": [f.stamp for f in frames if f.stamp not in run.recv][:100],
        "unexpected_outputs": run.unexpected,
        "diagnostics_seen": len(run.diag),
        "latency_ms": {
            "median": float(np.median(lat)) if lat.size else None,
            "p99": float(np.percentile(lat, 99)) if lat.size else None,
            "mean": float(lat.mean()) if lat.size else None,
            "max": float(lat.max()) if lat.size else None,
        },
        "throughput_fps": len(matched) / span if span > 0 else None,
        "input_fps": (n / (timing["t_last_pub"] - timing["t_start"])
                      if timing["t_last_pub"] > timing["t_start"] else None),
        "node_startup_s": timing["startup_s"],
        "metrics": _jsonable(summ),
        "confusion_matrix": cm.tolist(),
        "class_names": list(card.class_names),
        "ignore_index": card.ignore_index,
    }
    return report


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        v = float(x)
        return None if np.isnan(v) else v
    if isinstance(x, float) and x != x:
        return None
    return x


def print_report(report: dict[str, Any]) -> None:
    """Rich tables: per-class IoU and the run's figures."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = report["metrics"]
    per_class = _per_class_iou(m, report["class_names"])
    t = Table(title=f"{report['model_name']} on {Path(report['bag']).name} "
                    f"({report['scored']} frames scored, {report['pacing']})")
    t.add_column("class")
    t.add_column("IoU %", justify="right")
    for name, iou in per_class.items():
        t.add_row(name, "-" if iou is None else f"{100 * iou:.1f}")
    console.print(t)
    lat = report["latency_ms"]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    s = Table(show_header=False, title="run")
    s.add_column()
    s.add_column(justify="right")
    s.add_row("mIoU %", f(_get(m, "miou"), ".4g") if _get(m, "miou") is None
              else f"{100 * _get(m, 'miou'):.2f}")
    s.add_row("pixel accuracy %", "-" if _get(m, "pixel_acc") is None
              else f"{100 * _get(m, 'pixel_acc'):.2f}")
    s.add_row("frames", str(report["frames"]))
    s.add_row("matched / dropped / rejected / missing",
              f"{report['matched']} / {report['dropped']} / {report['rejected']} / "
              f"{report['missing']}")
    s.add_row("latency median / p99 ms", f"{f(lat['median'], '.1f')} / {f(lat['p99'], '.1f')}")
    s.add_row("throughput fps", f(report["throughput_fps"], ".1f"))
    s.add_row("input fps", f(report["input_fps"], ".1f"))
    s.add_row("node startup s", f(report["node_startup_s"], ".1f"))
    console.print(s)
    if report["missing"] and report.get("missing_never_received"):
        console.print(f"[yellow]{report['missing_never_received']} of the {report['missing']} "
                      "missing frames never reached the node (lost in DDS before its callback, "
                      "e.g. a depth-1 input queue); its dropped counter cannot see those[/yellow]")
    if report["diagnostics_seen"] == 0:
        console.print("[yellow]no /diagnostics from the node: frames it dropped count as "
                      "missing[/yellow]")
    if report.get("png"):
        console.print(f"contact sheet: {report['png']}")
    if report.get("out_bag"):
        console.print(f"node outputs recorded in: {report['out_bag']}")


def _get(m: dict[str, Any], what: str) -> Any:
    """A figure of a seg_ros.metrics summary: 'miou', 'pixel_acc' or 'iou' (per class)."""
    return m.get({"pixel_acc": "pixel_accuracy", "iou": "per_class_iou"}.get(what, what))


def _per_class_iou(m: dict[str, Any], names: list[str]) -> dict[str, float | None]:
    iou = _get(m, "iou") or {}
    return {n: iou.get(n) for n in names}
