"""seg_ros.bag: make (both storages), play -> record over real topics, eval through a real node
process, drop accounting, and clear errors on bad bags."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from seg_ros.bag import (
    BagError,
    image_from_msg,
    open_reader,
    register_installed,
    typestore,
)
from seg_ros.bag.make import default_camera, make_bag
from seg_ros.frames import read_rgb
from seg_ros.live import pick_domain

REPO = Path(__file__).resolve().parents[2]
START_NS = 1_700_000_000_000_000_000
N_FRAMES = 6


def _frames(camvid_dir: Path, n: int = N_FRAMES) -> list[Path]:
    return sorted((camvid_dir / "val").iterdir())[:n]


def _read_all(bag: Path) -> dict[str, list[tuple[int, Any, str]]]:
    """topic -> (time ns, message, type) of a bag: messages are rosbags' generated classes."""
    out: dict[str, list[tuple[int, Any, str]]] = {}
    reader = open_reader(bag)
    try:
        for conn, t, raw in reader.messages():
            if conn.msgtype not in typestore().types:  # e.g. vision_msgs' (~/label_info/vision)
                assert register_installed(conn.msgtype), conn.msgtype
            msg = typestore().deserialize_cdr(raw, conn.msgtype)
            out.setdefault(conn.topic, []).append((t, msg, conn.msgtype))
    finally:
        reader.close()
    return out


FAST_FRAMES = 24


@pytest.fixture(scope="module")
def fast_bag(camvid_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "fast"
    make_bag(camvid_dir / "val", out, camvid_dir / "valannot", limit=FAST_FRAMES, rate=10.0,
             start_ns=START_NS, progress=False)
    return out


@pytest.fixture(scope="module")
def raw_bag(camvid_dir: Path, tmp_path_factory) -> Path:
    """A raw rgb8 bag of the first N_FRAMES CamVid val frames with ground truth."""
    out = tmp_path_factory.mktemp("bags") / "raw"
    make_bag(camvid_dir / "val", out, camvid_dir / "valannot", limit=N_FRAMES,
             start_ns=START_NS, rate=10.0, progress=False)
    return out


# --------------------------------------------------------------------------------------- make


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_make_reads_back(camvid_dir: Path, tmp_path: Path, storage: str) -> None:
    out = tmp_path / "bag"
    res = make_bag(camvid_dir / "val", out, camvid_dir / "valannot", limit=4, rate=5.0,
                   storage=storage, start_ns=START_NS, progress=False)
    assert res.frames == 4
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metadata.yaml", f"bag.{'mcap' if storage == 'mcap' else 'db3'}"])
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # staging cleaned up
    msgs = _read_all(out)
    assert {t: len(v) for t, v in msgs.items()} == {
        "/camera/image_raw": 4, "/camera/camera_info": 4, "/camera/labels_gt": 4}
    types = {t: v[0][2] for t, v in msgs.items()}
    assert types == {"/camera/image_raw": "sensor_msgs/msg/Image",
                     "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                     "/camera/labels_gt": "sensor_msgs/msg/Image"}
    for i, path in enumerate(_frames(camvid_dir, 4)):
        want_t = START_NS + i * 200_000_000
        for topic in msgs:
            t, msg, _ = msgs[topic][i]
            assert t == want_t
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == want_t
            assert msg.header.frame_id == "camera"
        _, img, _ = msgs["/camera/image_raw"][i]
        assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 360, 480, 1440)
        assert img.data.tobytes() == read_rgb(path).tobytes()
        _, lab, _ = msgs["/camera/labels_gt"][i]
        truth = cv2.imread(str(camvid_dir / "valannot" / path.name), cv2.IMREAD_UNCHANGED)
        assert truth is not None
        assert lab.encoding == "mono8"
        assert lab.data.tobytes() == truth.tobytes()
        _, info, _ = msgs["/camera/camera_info"][i]
        assert (info.width, info.height) == (480, 360)
        np.testing.assert_allclose(info.k, default_camera(480, 360).k)


def test_make_compressed(camvid_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    make_bag(camvid_dir / "val", out, camvid_dir / "valannot", compressed=True, limit=3,
             start_ns=START_NS, progress=False)
    msgs = _read_all(out)
    assert set(msgs) == {"/camera/image_raw/compressed", "/camera/camera_info",
                         "/camera/labels_gt/compressed"}
    for i, path in enumerate(_frames(camvid_dir, 3)):
        _, img, ty = msgs["/camera/image_raw/compressed"][i]
        assert img.format.startswith("rgb8; jpeg")
        rgb = image_from_msg(img, ty)
        assert np.abs(rgb.astype(int) - read_rgb(path)).mean() < 4  # JPEG q90
        _, lab, ty = msgs["/camera/labels_gt/compressed"][i]
        truth = cv2.imread(str(camvid_dir / "valannot" / path.name), cv2.IMREAD_UNCHANGED)
        assert truth is not None
        np.testing.assert_array_equal(image_from_msg(lab, ty, keep_ids=True), truth)


def test_make_camera_yaml(camvid_dir: Path, tmp_path: Path) -> None:
    yaml_text = """image_width: 480
image_height: 360
camera_name: cam
camera_matrix: {rows: 3, cols: 3, data: [400, 0, 240, 0, 401, 180, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0, 0, 0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [400, 0, 240, 0, 0, 401, 180, 0, 0, 0, 1, 0]}
"""
    (tmp_path / "cam.yaml").write_text(yaml_text)
    make_bag(camvid_dir / "val", tmp_path / "b", camera_info=tmp_path / "cam.yaml", limit=1,
             progress=False)
    (_, info, _), = _read_all(tmp_path / "b")["/camera/camera_info"]
    assert list(info.k) == [400, 0, 240, 0, 401, 180, 0, 0, 1]
    assert list(info.d) == [0.1, -0.2, 0, 0, 0]
    # calibration for another resolution is refused, nothing left behind
    (tmp_path / "bad.yaml").write_text(yaml_text.replace("480", "640"))
    with pytest.raises(BagError, match="640x360 but the frames are 480x360"):
        make_bag(camvid_dir / "val", tmp_path / "c", camera_info=tmp_path / "bad.yaml",
                 limit=1, progress=False)
    assert not (tmp_path / "c").exists()


def test_make_label_size_mismatch_leaves_nothing(camvid_dir: Path, tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    for i, p in enumerate(_frames(camvid_dir, 3)):
        shutil.copy(p, images / p.name)
        truth = cv2.imread(str(camvid_dir / "valannot" / p.name), cv2.IMREAD_UNCHANGED)
        assert truth is not None
        if i == 2:
            truth = cv2.resize(truth, (240, 180), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(labels / p.name), truth)
    bad = _frames(camvid_dir, 3)[2].name
    with pytest.raises(BagError, match=f"label map .*{bad} is 240x180 but its frame"):
        make_bag(images, tmp_path / "out", labels, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "lab"]
    # the CLI says it in one line, exit 2
    r = _cli("bag", "make", "--images", images, "--labels", labels, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("seg-ros bag: error: label map")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "lab"]


def _cli(*args: object, timeout: float = 120, env: dict | None = None,
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------- play -> record


@pytest.mark.ros
def test_play_then_record_roundtrip(raw_bag: Path, tmp_path: Path) -> None:
    """Messages played onto live topics arrive byte-identical in a recorded bag."""
    from seg_ros.bag.play import play_bag
    from seg_ros.bag.record import record_bag

    domain = pick_domain()
    result: dict = {}
    topics = ["/camera/image_raw", "/camera/labels_gt", "/clock"]
    rec = threading.Thread(target=lambda: result.update(res=record_bag(
        topics, tmp_path / "rec", duration=12.0, domain_id=domain, progress=False)))
    rec.start()
    time.sleep(0.5)
    played = play_bag(raw_bag, rate=5.0, clock_hz=20, domain_id=domain, delay=1.5,
                      progress=False, wait_for_subscribers=8.0)
    rec.join()
    assert played.published["/camera/image_raw"] == N_FRAMES
    res = result["res"]
    assert res.counts["/camera/image_raw"] == N_FRAMES
    assert res.counts["/camera/labels_gt"] == N_FRAMES
    assert res.counts["/clock"] >= N_FRAMES
    src, got = _read_all(raw_bag), _read_all(tmp_path / "rec")
    for topic in ("/camera/image_raw", "/camera/labels_gt"):
        for (_, a, _), (_, b, _) in zip(src[topic], got[topic]):
            assert a.header == b.header
            assert a.data.tobytes() == b.data.tobytes()
    clocks = [m.clock.sec * 10**9 + m.clock.nanosec for _, m, _ in got["/clock"]]
    assert clocks == sorted(clocks)
    assert clocks[0] >= START_NS and clocks[-1] <= START_NS + (N_FRAMES - 1) * 100_000_000


# ---------------------------------------------------------------------------- bad bags


def test_truncated_bag_is_a_clear_error(raw_bag: Path, tmp_path: Path) -> None:
    from seg_ros.bag.evaluate import load_frames

    cut = tmp_path / "cut"
    shutil.copytree(raw_bag, cut)
    data = cut / "raw.mcap"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(BagError, match="truncated or corrupt"):
        load_frames(cut)
    r = _cli("bag", "eval", cut, "--model", "nonexistent.onnx")
    assert r.returncode == 2
    assert "truncated or corrupt" in r.stderr.strip().splitlines()[-1]


def test_bag_without_image_topic(camvid_dir: Path, tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    from seg_ros.bag.evaluate import load_frames

    bag = tmp_path / "noimg"
    ts = typestore()
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        w.write(c, START_NS, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="hi"),
                                              "std_msgs/msg/String"))
    with pytest.raises(BagError, match=r"has no image topic .* its topics: /chatter"):
        load_frames(bag)
    with pytest.raises(BagError, match="does not exist"):
        load_frames(tmp_path / "nothing")
    with pytest.raises(BagError, match="no metadata.yaml"):
        load_frames(tmp_path)


def test_gt_size_disagrees_with_images(camvid_dir: Path, tmp_path: Path) -> None:
    """A bag (not made by us) whose label topic has another size than its images."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from seg_ros.bag.evaluate import load_frames

    ts = typestore()
    T = ts.types
    bag = tmp_path / "mismatch"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        cl = w.add_connection("/camera/labels_gt", "sensor_msgs/msg/Image", typestore=ts)
        header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=5,
                                                                                 nanosec=0),
                                          frame_id="camera")
        img = T["sensor_msgs/msg/Image"](header=header, height=4, width=6, encoding="rgb8",
                                         is_bigendian=0, step=18,
                                         data=np.zeros(72, np.uint8))
        lab = T["sensor_msgs/msg/Image"](header=header, height=2, width=3, encoding="mono8",
                                         is_bigendian=0, step=3, data=np.zeros(6, np.uint8))
        w.write(ci, 5 * 10**9, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
        w.write(cl, 5 * 10**9, ts.serialize_cdr(lab, "sensor_msgs/msg/Image"))
    with pytest.raises(BagError, match=r"labels .* are 3x2 but the image .* is 6x4"):
        load_frames(bag)


# ------------------------------------------------------------------- eval through a real node


def _direct_summary(camvid_dir: Path, model: Path, frames: list[Path]) -> dict:
    """The core path without ROS: Segmenter + seg_ros.metrics on the same frames."""
    from seg_ros import metrics
    from seg_ros.engines import open_engine
    from seg_ros.segmenter import Segmenter

    seg = Segmenter(open_engine(model))
    card = seg.card
    cm = np.zeros((card.num_classes, card.num_classes), np.int64)
    for p in frames:
        truth = cv2.imread(str(camvid_dir / "valannot" / p.name), cv2.IMREAD_UNCHANGED)
        assert truth is not None
        pred = seg(read_rgb(p), want_confidence=False).labels
        cm += metrics.confusion_matrix(pred, truth, card.num_classes, card.ignore_index)
    return metrics.summary(cm, list(card.class_names))


@pytest.mark.ros
@pytest.mark.slow
def test_eval_lockstep_equals_core(raw_bag: Path, camvid_dir: Path, tiny_model: Path,
                                   tmp_path: Path) -> None:
    """`seg-ros bag eval` through a real node process and real topics gives the core's mIoU."""
    import json

    from seg_ros.bag.evaluate import _get

    js, png, outb = tmp_path / "r.json", tmp_path / "sheet.png", tmp_path / "outputs"
    r = _cli("bag", "eval", raw_bag, "--model", tiny_model, "--json", js, "--png", png,
             "--out", outb, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(js.read_text())
    assert (rep["frames"], rep["matched"], rep["dropped"], rep["missing"]) == (N_FRAMES,
                                                                               N_FRAMES, 0, 0)
    assert rep["scored"] == N_FRAMES
    direct = _direct_summary(camvid_dir, tiny_model, _frames(camvid_dir))
    assert abs(_get(rep["metrics"], "miou") - _get(direct, "miou")) < 1e-3
    assert abs(_get(rep["metrics"], "pixel_acc") - _get(direct, "pixel_acc")) < 1e-3
    # ... and what `seg-ros eval` says about the same frames
    r2 = _cli("eval", tiny_model, "--data", camvid_dir, "--split", "val", "--limit", N_FRAMES,
              "--json", tmp_path / "eval.json")
    assert r2.returncode == 0, r2.stderr[-2000:]
    ref = json.loads((tmp_path / "eval.json").read_text())
    assert ref["frames"] == N_FRAMES
    assert abs(_get(rep["metrics"], "miou") - ref["miou"]) < 1e-3
    assert rep["latency_ms"]["median"] > 0 and rep["latency_ms"]["p99"] >= rep["latency_ms"][
        "median"]
    assert "mIoU" in r.stdout
    sheet = cv2.imread(str(png))
    assert sheet is not None and sheet.shape[0] > 6 * 240
    got = _read_all(outb)
    labels = got["/segmentation_node/labels"]
    assert len(labels) == N_FRAMES
    assert sorted(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m, _ in labels) == [
        START_NS + i * 100_000_000 for i in range(N_FRAMES)]
    _assert_outputs_of_input_frames_only(got, outb)


def _assert_outputs_of_input_frames_only(got: dict, out_bag: Path) -> None:
    """Every image and grid output in ``out_bag`` is of an input frame (no warm-up frame), and
    ~/label_info is there once, offered transient-local in metadata.yaml."""
    import yaml

    inputs = {START_NS + i * 100_000_000 for i in range(N_FRAMES)}
    for topic, msgs in got.items():
        if topic in ("/diagnostics", INFO_TOPIC, f"{INFO_TOPIC}/vision"):  # latched, once
            continue
        stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m, _ in msgs}
        assert stamps <= inputs, f"{topic} holds frames not in the input bag: {stamps - inputs}"
    assert {"/segmentation_node/overlay", "/segmentation_node/color_mask"} <= set(got)
    if importlib.util.find_spec("seg_ros.msg") is None:
        return  # interface not generated: the node has no label_info
    assert len(got[INFO_TOPIC]) == 1
    assert len(got[f"{INFO_TOPIC}/vision"]) == 1  # vision_msgs/LabelInfo recorded too
    meta = yaml.safe_load((out_bag / "metadata.yaml").read_text())
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]}
    assert [q["durability"] for q in offered[INFO_TOPIC]] == ["transient_local"]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("depth", [1, 100])
def test_eval_fast_replay_accounts_for_every_frame(fast_bag: Path, tiny_model: Path,
                                                   tmp_path: Path, depth: int) -> None:
    """Replayed far faster than the node runs: frames drop, but every one is accounted for.

    With the node's default input queue (depth 1) most frames are overwritten inside DDS before
    the node sees them: they must show up as missing *and* as never received by the node. With
    a deep input queue every frame reaches the node, whose one-slot mailbox drops and counts.
    """
    from seg_ros.bag.evaluate import evaluate_bag

    rep = evaluate_bag(fast_bag, tiny_model, rate=100.0, progress=False, log_dir=tmp_path,
                       node_params=[f"qos.depth:={depth}"])
    n = FAST_FRAMES
    assert rep["frames"] == n
    assert rep["matched"] + rep["dropped"] + rep["rejected"] + rep["missing"] == n
    assert 1 <= rep["matched"] < n, "1000 frames/s in: the node should not keep up"
    assert rep["diagnostics_seen"] > 0
    assert rep["node_counters"]["processed"] == rep["matched"]
    # nothing the node received vanished without a counter
    assert rep["missing_never_received"] == rep["missing"]
    if depth == 100:
        assert rep["dropped"] > 0


def test_shipped_demo_bag() -> None:
    """The committed demo bag: 30 JPEG frames with lossless ground truth, under 5 MB."""
    from seg_ros.bag.evaluate import load_frames

    bag = REPO / "data" / "camvid_demo_bag"
    assert sum(p.stat().st_size for p in bag.iterdir()) < 5_000_000
    data = load_frames(bag)
    assert len(data.frames) == 30 and data.meta["truth_frames"] == 30
    assert data.image_type == "sensor_msgs/msg/CompressedImage"
    assert all(f.truth is not None and f.truth.shape == f.size == (360, 480) and f.info_raw
               for f in data.frames)


# ------------------------------------------------------------------ latched topics (label_info)

INFO_TOPIC = "/segmentation_node/label_info"


@pytest.mark.ros
@pytest.mark.slow
def test_label_info_recorded_and_replayed_latched(tiny_model: Path, tmp_path: Path) -> None:
    """A recorder that joins after the node published ~/label_info still records it (transient
    local), metadata.yaml says transient_local, and playing the bag offers it latched again: a
    subscriber joining after it was played gets it, a volatile one does not."""
    info_mod = pytest.importorskip("seg_ros.msg", reason="seg_ros.msg not generated "
                                   "(scripts/build_msgs.sh): the node runs without label_info")
    import yaml

    from seg_ros.bag.record import record_bag
    from seg_ros.bag.rosio import qos
    from seg_ros.live import LiveClient, NodeProcess, wait_for
    from seg_ros.model_card import CAMVID_CLASSES

    domain = pick_domain()
    node = NodeProcess(["-p", f"model_path:={tiny_model}"], domain)
    try:
        with LiveClient(domain, "label_info_probe") as probe:
            got: list = []
            probe.node.create_subscription(info_mod.SegmentationInfo, INFO_TOPIC, got.append,
                                           qos(transient_local=True))
            wait_for(lambda: got or not node.alive(), 90, "label_info from the node")
            assert got, node.tail()
        rec = record_bag([INFO_TOPIC, "/diagnostics"], tmp_path / "rec", duration=5.0,
                         domain_id=domain, progress=False)
    finally:
        node.stop()
    assert rec.counts.get(INFO_TOPIC) == 1 and not rec.skipped, (rec.counts, rec.skipped)
    meta = yaml.safe_load((tmp_path / "rec" / "metadata.yaml").read_text())
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]}
    assert [q["durability"] for q in offered[INFO_TOPIC]] == ["transient_local"]
    assert [q["reliability"] for q in offered[INFO_TOPIC]] == ["reliable"]
    assert {q["durability"] for q in offered["/diagnostics"]} == {"volatile"}
    bag = _read_all(tmp_path / "rec")
    (t_info, info, msgtype), = bag[INFO_TOPIC]
    assert msgtype == "seg_ros/msg/SegmentationInfo"
    assert tuple(info.class_names) == CAMVID_CLASSES and info.model_name == "tiny"
    diags_before = sum(t < t_info for t, _, _ in bag["/diagnostics"])
    assert len(bag["/diagnostics"]) - diags_before >= 2, "too short a recording to replay"
    _assert_replayed_latched(tmp_path / "rec", pick_domain(), diags_before, info_mod)


def _assert_replayed_latched(bag: Path, domain: int, diags_before: int, info_mod) -> None:
    """Play ``bag``; once a /diagnostics message that follows label_info in the bag arrives
    (so label_info was published), late subscribers join: transient-local gets it."""
    from diagnostic_msgs.msg import DiagnosticArray

    from seg_ros.bag.play import play_bag
    from seg_ros.bag.rosio import qos
    from seg_ros.live import LiveClient, wait_for

    player = threading.Thread(target=play_bag, kwargs=dict(
        bag=bag, domain_id=domain, delay=1.5, progress=False), daemon=True)
    with LiveClient(domain, "replay_probe") as probe:
        diags: list = []
        probe.node.create_subscription(DiagnosticArray, "/diagnostics", diags.append,
                                       qos(depth=100))
        player.start()
        wait_for(lambda: len(diags) > diags_before, 30, "replayed /diagnostics")
        latched: list = []
        volatile: list = []
        probe.node.create_subscription(info_mod.SegmentationInfo, INFO_TOPIC, latched.append,
                                       qos(transient_local=True))
        probe.node.create_subscription(info_mod.SegmentationInfo, INFO_TOPIC, volatile.append,
                                       qos())
        wait_for(lambda: latched, 10, "the replayed label_info (late, transient local)")
        assert latched[0].model_name == "tiny" and not volatile
    player.join(30)
