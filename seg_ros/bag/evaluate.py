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

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.bag import (
    CAMERA_INFO,
    COMPRESSED,
    DEPTH_MARK,
    IMAGE,
    IMAGE_TYPES,
    LABELS_SUFFIX,
    BagError,
    deserialize,
    find_topic,
    image_from_msg,
    iter_raw,
    open_reader,
)
from seg_ros.bag.driver import BagFrames, Frame, Run, drive, start_node
from seg_ros.bag.mcap_crc import unchecked_note
from seg_ros.stamps import stamp_ns


def load_frames(bag: str | Path, image_topic: str | None = None,
                labels_topic: str | None = None) -> BagFrames:
    """Read the frames, camera info and ground truth of ``bag`` (ROS-free; rosbags only)."""
    reader = open_reader(bag)
    source = str(bag)
    try:
        img_c = find_topic(reader, IMAGE_TYPES, source, image_topic,
                           exclude=(LABELS_SUFFIX, DEPTH_MARK))
        lab_c: Any = None
        if labels_topic is not None:
            lab_c = find_topic(reader, IMAGE_TYPES, source, labels_topic, what="labels")
        else:
            cands = [c for c in reader.connections
                     if c.msgtype in IMAGE_TYPES and LABELS_SUFFIX in c.topic]
            lab_c = cands[0] if cands else None
        infos = [c for c in reader.connections
                 if c.msgtype == CAMERA_INFO and DEPTH_MARK not in c.topic]
        info_c = infos[0] if infos else None
        depth = _depth_connections(reader, img_c)
        conns = [c for c in (img_c, lab_c, info_c, *depth) if c is not None]

        images: list[tuple[int, int, bytes, tuple[int, int]]] = []
        truths: dict[int, np.ndarray] = {}
        info_by_stamp: dict[int, bytes] = {}
        depth_by_stamp: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        for conn, t, raw in iter_raw(reader, conns, source):
            raw = bytes(raw)
            msg = deserialize(raw, conn.msgtype, f"{source} {conn.topic}")
            s = stamp_ns(msg.header)
            if conn is img_c:
                size = _image_size(msg, conn.msgtype)
                images.append((s, t, raw, size))
            elif conn is lab_c:
                truths[s] = image_from_msg(msg, conn.msgtype, keep_ids=True)
            elif conn is info_c:
                info_by_stamp[s] = raw
            else:
                depth_by_stamp[depth.index(conn)][s] = raw
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
        frames.append(Frame(s, t, raw, info, truth, size, depth_by_stamp[0].get(s),
                            depth_by_stamp[1].get(s)))
    if len({f.stamp for f in frames}) != len(frames):
        raise BagError(
            f"bag {source}: several frames on {img_c.topic} share a header stamp, so outputs "
            "cannot be matched to inputs: give every frame its own stamp"
        )
    return BagFrames(frames, img_c.topic, img_c.msgtype, info_c.topic if info_c else None,
                     lab_c.topic if lab_c else None,
                     {"truth_frames": sum(f.truth is not None for f in frames),
                      "depth_frames": sum(f.depth_raw is not None for f in frames)},
                     *(c.topic if c is not None else None for c in depth))


def _depth_connections(reader: Any, image: Any) -> list[Any]:
    """[depth image, depth camera_info] connections (None where absent): an Image topic and a
    CameraInfo topic naming ``depth`` (a made bag's {prefix}/depth/..., a RealSense's
    aligned_depth_to_color/...), replayed so the node pairs them with the colour frames."""
    def first(types: tuple[str, ...]) -> Any:
        found = [c for c in reader.connections if c.msgtype in types and c is not image
                 and DEPTH_MARK in c.topic and LABELS_SUFFIX not in c.topic]
        return found[0] if found else None

    return [first((IMAGE,)), first((CAMERA_INFO,))]


def _image_size(msg: Any, msgtype: str) -> tuple[int, int]:
    if msgtype == IMAGE:
        return int(msg.height), int(msg.width)
    import cv2

    buf = np.frombuffer(memoryview(msg.data), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BagError(f"a compressed frame ({msg.format!r}) does not decode: corrupt bag")
    return int(img.shape[0]), int(img.shape[1])


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

    data = load_frames(bag, image_topic, labels_topic)  # a failed chunk checksum: BagError
    unchecked = unchecked_note(bag)
    if unchecked:  # reported, never silent: these frames are scored as read
        print(f"warning: {unchecked}", file=sys.stderr)
    _check_inputs(bag, data, rate, out_bag)
    card = read_card(model)  # fails fast, before starting a node, on a bad model path

    log_dir = Path(log_dir) if log_dir else Path(png).parent if png else Path(tempfile.mkdtemp(
        prefix="seg_ros_eval_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    compressed = data.image_type == COMPRESSED
    node_proc, domain = start_node(model, data.image_topic, compressed, data.info_topic,
                                   node_params or [], log_dir / "node.log", params_file,
                                   (data.depth_topic, data.depth_info_topic))
    writer = None
    try:
        from seg_ros.bag.rosio import RawBagWriter

        if out_bag is not None:
            writer = RawBagWriter(out_bag)
        run, timing, outputs = drive(data, node_proc, domain, rate, timeout, startup_timeout,
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
    report["depth"] = _depth_report(data, run)
    report["integrity"] = unchecked or "every MCAP chunk checksum verified"
    if writer is not None:
        report["out_bag"] = str(out_bag)
        report["out_bag_counts"] = dict(writer.counts)
    if png is not None:
        from seg_ros.bag.sheet import contact_sheet

        contact_sheet(data, run.recv, run.grids, card, png, report)
        report["png"] = str(png)
    return report


def _check_inputs(bag: str | Path, data: BagFrames, rate: float | None,
                  out_bag: str | Path | None) -> None:
    """Refuse, before a node starts, a bag without ground truth, a bad rate or an existing
    output bag."""
    if data.labels_topic is None or data.meta["truth_frames"] == 0:
        raise BagError(
            f"bag {bag} has no ground-truth labels topic (*{LABELS_SUFFIX}*, mono8 Image or PNG "
            "CompressedImage) matching its frames: make it with `seg-ros bag make --labels DIR`"
            " or name it with --labels-topic"
        )
    if rate is not None and not rate > 0:
        raise BagError(f"--rate {rate} must be > 0 (leave it out for lockstep)")
    if out_bag is not None and Path(out_bag).exists():
        raise BagError(f"{out_bag} exists already: choose another --out or delete it first")


def _depth_report(data: BagFrames, run: Run) -> dict[str, Any] | None:
    """The bag's depth stream and the node's account of it (its last /diagnostics, warm-up
    frames included): depth images paired with frames, frames without one, grids from depth."""
    if data.depth_topic is None:
        return None
    last = run.diag[-1][1] if run.diag else {}
    return {"topic": data.depth_topic, "camera_info_topic": data.depth_info_topic,
            "frames_with_depth": data.meta.get("depth_frames", 0),
            **{k: int(last[k]) for k in ("depth_matched", "depth_unmatched", "depth_rejected",
                                         "depth_floor_grids") if k in last}}


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


def _account(run: Run, timing: dict[str, float], n: int, unmatched: int) -> dict[str, Any]:
    """The node's own account of the frames it did not answer, from its /diagnostics counters:
    ``node_counts`` (increase over the run), ``accounted`` (unmatched frames it counted as
    dropped / rejected / failed / idle), ``missing`` (the rest) and ``never_received``."""
    # The counters count from node start; nothing reached it before our first frame, but take
    # the difference to a status sent before the run anyway.
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
    # Of the missing, how many never reached the node's subscription callback (lost in DDS:
    # e.g. overwritten in a depth-1 reader queue, which no node counter can see).
    never_received = (min(left, max(0, n - node_counts["received"]))
                      if "received" in node_counts else None)
    return {"node_counts": node_counts, "accounted": accounted, "missing": left,
            "never_received": never_received}


def _score(matched: list[Frame], run: Run, card: Any) -> tuple[np.ndarray, int]:
    """Confusion matrix of the matched frames with truth, and how many were scored; class
    groups: the node publishes group ids, so the truth is scored in groups too."""
    from seg_ros import metrics

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
    return meter.compute(), scored


def _report(data: BagFrames, run: Run, timing: dict[str, float], card: Any,
            rate: float | None, model: str | Path, bag: str | Path) -> dict[str, Any]:
    from seg_ros import metrics

    frames = data.frames
    n = len(frames)
    matched = [f for f in frames if f.stamp in run.recv]
    acc = _account(run, timing, n, n - len(matched))
    accounted, missing = acc["accounted"], acc["missing"]
    cm, scored = _score(matched, run, card)
    card = card.grouped()
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
        "missing_never_received": acc["never_received"],
        "scored": scored,
        "rejected_detail": {k: accounted[k] for k in ("rejected", "failed", "idle")},
        "node_counters": acc["node_counts"],
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
    if report.get("depth"):
        d = report["depth"]
        s.add_row("depth matched / unmatched", f"{d.get('depth_matched', '-')} / "
                  f"{d.get('depth_unmatched', '-')} ({d['topic']})")
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
