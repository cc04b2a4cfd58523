"""Bag eval's driver: a bag's frames into a real node process over real topics, its outputs back.

The node is a :class:`seg_ros.live.NodeProcess` in a private ROS domain and the client a
:class:`seg_ros.live.LiveClient` (its spin thread runs the callbacks below). Outputs are taken
raw (CDR) and decoded with rosbags, so they can be written unchanged to the output bag.

Start-up: the graph can list a subscription before its reader accepts our writer, and the first
inference is slow, so the first frame is sent under stamps of its own (1 s before the bag) until
one comes back; those warm-up outputs are neither scored nor recorded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.bag import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    BagError,
    deserialize,
    header_stamp_ns,
    image_from_msg,
)
from seg_ros.live import LiveClient, NodeProcess, pick_domain
from seg_ros.pipeline import NODE_NAME
from seg_ros.ros.compat import publisher_count
from seg_ros.stamps import stamp_ns

LABELS_TOPIC = f"/{NODE_NAME}/labels"
GRID_TOPIC = f"/{NODE_NAME}/floor_grid"
DIAGNOSTICS = "/diagnostics"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"
POLL_S = 0.001  # how often the main thread looks at what the spin thread received


@dataclass
class Frame:
    """One input frame of the bag."""

    stamp: int                 # header stamp, ns (the key outputs are matched by)
    t_bag: int                 # bag timestamp, ns (pacing)
    raw: bytes                 # the image message as CDR, published unchanged
    info_raw: bytes | None     # camera info with the same stamp (or the latest before)
    truth: np.ndarray | None   # ground-truth class ids (H, W)
    size: tuple[int, int]      # (H, W) of the image
    depth_raw: bytes | None = None       # registered depth image with the same stamp
    depth_info_raw: bytes | None = None  # its camera info with the same stamp


@dataclass
class BagFrames:
    frames: list[Frame]
    image_topic: str
    image_type: str
    info_topic: str | None
    labels_topic: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    depth_topic: str | None = None       # replayed to the node's depth/image
    depth_info_topic: str | None = None  # replayed to the node's depth/camera_info


@dataclass
class Run:
    """What came back, keyed by input header stamp (ns); times are monotonic s."""

    pub_time: dict[int, float] = field(default_factory=dict)
    recv: dict[int, tuple[float, np.ndarray]] = field(default_factory=dict)
    unexpected: int = 0
    grids: dict[int, Any] = field(default_factory=dict)             # stamp -> OccupancyGrid
    diag: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    last_output: float = 0.0


def start_node(model: str | Path, image_topic: str, compressed: bool, info_topic: str | None,
               params: list[str], log_path: Path, params_file: str | Path | None = None,
               depth_topics: tuple[str | None, str | None] = (None, None)
               ) -> tuple[NodeProcess, int]:
    """``seg-ros node`` on the bag's topics (``depth_topics``: depth image and its camera info,
    when the bag has them) in a domain of its own, in its own session (stopped by us, not by a
    terminal's Ctrl-C); the process and its domain id."""
    base = image_topic[: -len("/compressed")] if compressed else image_topic
    # --params-file goes first: the -p below (model, transport, --node-arg) override it
    args = ["--params-file", str(Path(params_file).resolve())] if params_file else []
    ros_args = ["-r", f"__node:={NODE_NAME}",
                "-p", f"model_path:={Path(model).resolve()}",
                "-r", f"image:={base}", "-r", f"image/compressed:={base}/compressed"]
    if info_topic:
        ros_args += ["-r", f"camera_info:={info_topic}"]
    for remapped, topic in zip(("depth/image", "depth/camera_info"), depth_topics):
        if topic:
            ros_args += ["-r", f"{remapped}:={topic}"]
    if compressed:
        ros_args += ["-p", "input_transport:=compressed"]
    for p in params:
        ros_args += ["-p", p]
    domain = pick_domain()
    return NodeProcess(ros_args, domain, NODE_NAME, args=args, log_path=log_path,
                       new_session=True), domain


class BagDriver:
    """Publishes a bag's frames to ``proc``'s node and collects its outputs into ``run``; every
    output also goes to ``writer`` (a RawBagWriter) when there is one."""

    def __init__(self, data: BagFrames, proc: NodeProcess, client: LiveClient, writer: Any,
                 want_grid: bool) -> None:
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from seg_ros.bag.rosio import qos

        self.data, self.proc, self.client, self.writer = data, proc, client, writer
        self.node, self.lock = client.node, threading.Lock()
        self.run = Run()
        self.warm: dict[int, float] = {}  # warm-up stamp -> arrival of its labels (0: not yet)
        self.stamps = {f.stamp for f in data.frames}
        self.subs: dict[str, Any] = {}
        self.wanted = [(LABELS_TOPIC, IMAGE, self._on_labels),
                       (DIAGNOSTICS, DIAGNOSTIC_ARRAY, self._on_diag)]
        if want_grid:
            self.wanted.append((GRID_TOPIC, OCCUPANCY_GRID, self._on_grid))
        self.img_pub = self.node.create_publisher(
            CompressedImage if data.image_type == COMPRESSED else Image, data.image_topic,
            qos(depth=10))
        self.info_pub = (self.node.create_publisher(CameraInfo, data.info_topic, qos(depth=10))
                         if data.info_topic else None)
        self.depth_pubs = [(self.node.create_publisher(t, topic, qos(depth=10)), attr)
                           for t, topic, attr in ((Image, data.depth_topic, "depth_raw"),
                                                  (CameraInfo, data.depth_info_topic,
                                                   "depth_info_raw")) if topic]

    # ------------------------------------------------------------------ callbacks (spin thread)

    def _record(self, topic: str, msgtype: str, raw: bytes) -> None:
        """Into the output bag, unless it is an output of a warm-up frame."""
        if self.writer is not None and header_stamp_ns(raw) not in self.warm:
            with self.lock:
                self.writer.write(topic, msgtype, time.time_ns(), raw)

    def _on_labels(self, raw: bytes) -> None:
        now = time.monotonic()
        msg = deserialize(raw, IMAGE, LABELS_TOPIC)
        s = stamp_ns(msg.header)
        if s in self.warm:
            self.warm[s] = now
            return
        self.run.last_output = now
        self._record(LABELS_TOPIC, IMAGE, raw)
        if s in self.stamps and s not in self.run.recv:
            self.run.recv[s] = (now, image_from_msg(msg, IMAGE, keep_ids=True))
        else:
            self.run.unexpected += 1

    def _on_diag(self, raw: bytes) -> None:
        self._record(DIAGNOSTICS, DIAGNOSTIC_ARRAY, raw)
        msg = deserialize(raw, DIAGNOSTIC_ARRAY, DIAGNOSTICS)
        for st in msg.status:
            if NODE_NAME in st.name or NODE_NAME in st.hardware_id:
                self.run.diag.append((time.monotonic(),
                                      {kv.key: kv.value for kv in st.values}))

    def _on_grid(self, raw: bytes) -> None:
        self._record(GRID_TOPIC, OCCUPANCY_GRID, raw)
        msg = deserialize(raw, OCCUPANCY_GRID, GRID_TOPIC)
        self.run.grids[stamp_ns(msg.header)] = msg

    # ------------------------------------------------------------------ graph

    def _subscribe(self, topic: str, msgtype: str, callback: Any, qos_profile: Any) -> None:
        from seg_ros.bag.rosio import msg_class, offered_qos

        if self.writer is not None:
            with self.lock:
                self.writer.declare(topic, msgtype, offered_qos(self.node, topic))
        self.subs[topic] = self.node.create_subscription(msg_class(msgtype), topic, callback,
                                                         qos_profile, raw=True)

    def subscribe_outputs(self) -> None:
        """Subscribe the node's outputs once they are in the graph, with the QoS they offer
        (reliable when the node publishes reliable: best effort would lose frames)."""
        from seg_ros.bag.rosio import matching_qos

        for topic, msgtype, cb in self.wanted:
            if topic not in self.subs and self.node.count_publishers(topic) > 0:
                self._subscribe(topic, msgtype, cb, matching_qos(self.node, topic))

    def record_other_outputs(self) -> list[str]:
        """Every output topic of the node; with a writer, subscribe the ones not yet taken (this
        makes the node compute them): images best effort (never stalls the node's writers),
        latched topics as offered (transient-local: ~/label_info was published before we
        joined)."""
        from seg_ros.bag.rosio import is_latched, matching_qos, qos

        try:
            published = self.node.get_publisher_names_and_types_by_node(NODE_NAME, "/")
        except Exception:  # the graph lags: the node's name may not be listed yet
            published = []
        for topic, types in published if self.writer is not None else []:
            if topic in self.subs or not topic.startswith(f"/{NODE_NAME}/"):
                continue
            self._subscribe(
                topic, types[0], lambda raw, t=topic, ty=types[0]: self._record(t, ty, raw),
                matching_qos(self.node, topic, 10) if is_latched(self.node, topic)
                else qos(False, 10))
        return sorted(t for t, _ in published)

    def check_alive(self) -> None:
        if not self.proc.alive():
            raise BagError(f"the node exited (code {self.proc.proc.returncode}, log "
                           f"{self.proc.log_path}):\n{self.proc.tail()}")

    def _until(self, done: Any, deadline: float, what: str) -> None:
        """Poll ``done()`` until true; BagError naming ``what`` at ``deadline`` (monotonic)."""
        while not done():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BagError(f"the node did not {what} (log {self.proc.log_path}):\n"
                               f"{self.proc.tail()}")
            time.sleep(0.05)

    def wait_ready(self, deadline: float) -> None:
        """Until the node subscribes our images and publishes labels."""

        def ready() -> bool:
            self.subscribe_outputs()
            return (self.img_pub.get_subscription_count() > 0 and LABELS_TOPIC in self.subs
                    and publisher_count(self.node, self.subs[LABELS_TOPIC]) > 0
                    and NODE_NAME in self.node.get_node_names())

        self._until(ready, deadline, f"subscribe {self.data.image_topic} and publish "
                                     f"{LABELS_TOPIC} in time")

    # ------------------------------------------------------------------ frames

    def publish(self, f: Frame) -> None:
        if self.info_pub is not None and f.info_raw is not None:
            self.info_pub.publish(f.info_raw)
        for pub, attr in self.depth_pubs:  # before the colour frame: the node pairs them
            if getattr(f, attr) is not None:
                pub.publish(getattr(f, attr))
        self.run.pub_time[f.stamp] = time.monotonic()
        self.img_pub.publish(f.raw)

    def warm_up(self, deadline: float) -> None:
        """The first frame under warm-up stamps, once a second, until one comes back; then
        a diagnostics status from after it (the baseline of the node's counters)."""
        first, next_try = self.data.frames[0], 0.0

        def answered() -> bool:
            nonlocal next_try
            if time.monotonic() >= next_try:
                self.subscribe_outputs()
                stamp = first.stamp - 1_000_000_000 - len(self.warm)
                self.warm[stamp] = 0.0
                info = (None if first.info_raw is None
                        else restamp(first.info_raw, CAMERA_INFO, stamp))
                depth = [None if raw is None else restamp(raw, msgtype, stamp) for raw, msgtype
                         in ((first.depth_raw, IMAGE), (first.depth_info_raw, CAMERA_INFO))]
                self.publish(Frame(stamp, first.t_bag,
                                   restamp(first.raw, self.data.image_type, stamp),
                                   info, None, first.size, *depth))
                next_try = time.monotonic() + 1.0
            return any(self.warm.values())

        self._until(answered, deadline, f"take a frame on {self.data.image_topic} in time")
        self.subscribe_outputs()
        self._wait_diag(after=time.monotonic(), seconds=2.5)
        self.run.pub_time.clear()

    def _wait_diag(self, after: float, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not any(t > after for t, _ in list(self.run.diag)):
            time.sleep(0.05)

    def lockstep(self, timeout: float, tick: Any) -> None:
        """Each frame after the previous one's labels came back (or ``timeout`` s passed)."""
        for f in self.data.frames:
            self.publish(f)
            deadline = time.monotonic() + timeout
            while f.stamp not in self.run.recv and time.monotonic() < deadline:
                time.sleep(POLL_S)
                self.check_alive()
            tick()

    def paced(self, rate: float, t_start: float, tick: Any) -> None:
        """Frames at ``rate`` times the bag's real time, whatever comes back."""
        bag0 = self.data.frames[0].t_bag
        for f in self.data.frames:
            due = t_start + (f.t_bag - bag0) / 1e9 / rate
            time.sleep(max(0.0, due - time.monotonic()))
            self.publish(f)
            self.check_alive()
            tick()

    def drain(self, timeout: float, t_last_pub: float) -> float:
        """Outputs still in flight (until 1.5 s quiet), then one fresh diagnostics message for
        the counters; when the draining ended (monotonic)."""
        quiet, hard = 1.5, t_last_pub + max(timeout, 5.0)
        n = len(self.data.frames)
        while time.monotonic() < hard and len(self.run.recv) < n:
            time.sleep(0.02)
            if time.monotonic() - max(self.run.last_output, t_last_pub) > quiet:
                break
        t_end = time.monotonic()
        self._wait_diag(after=t_end, seconds=3.0)
        return t_end


def drive(data: BagFrames, proc: NodeProcess, domain: int, rate: float | None,
          timeout: float, startup_timeout: float, writer: Any, want_grid: bool,
          progress: bool) -> tuple[Run, dict[str, float], list[str]]:
    """The whole exchange: ready, warm-up, the frames (lockstep or paced), draining; the run,
    its timing (monotonic s) and the node's output topics."""
    from tqdm import tqdm

    with LiveClient(domain, name="seg_ros_bag_eval") as client:
        driver = BagDriver(data, proc, client, writer, want_grid)
        t0 = time.monotonic()
        driver.wait_ready(t0 + startup_timeout)
        outputs = driver.record_other_outputs()
        driver.warm_up(t0 + startup_timeout)
        startup_s = time.monotonic() - t0
        bar = tqdm(total=len(data.frames), desc="bag eval", unit="frame", disable=not progress)
        t_start = time.monotonic()
        if rate is None:
            driver.lockstep(timeout, bar.update)
        else:
            driver.paced(rate, t_start, bar.update)
        t_last_pub = time.monotonic()
        t_end = driver.drain(timeout, t_last_pub)
        bar.close()
    timing = {"startup_s": startup_s, "t_start": t_start, "t_last_pub": t_last_pub,
              "t_end": t_end}
    return driver.run, timing, outputs


def restamp(raw: bytes, msgtype: str, stamp: int) -> bytes:
    """The message ``raw`` with its header stamp set to ``stamp`` (ns)."""
    from seg_ros.bag import typestore

    ts = typestore()
    msg = ts.deserialize_cdr(raw, msgtype)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return bytes(ts.serialize_cdr(msg, msgtype))
