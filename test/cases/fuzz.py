"""Malformed Image / CompressedImage / CameraInfo messages (hypothesis strategies) thrown at
live node processes: the node must stay alive, count every bad image as rejected (or dropped,
when a newer message overwrote it in the mailbox), log it (rate-limited) and process the next
good frame.

Two nodes run: one on raw images, one on CompressedImage; both get the CameraInfo messages,
and ~/floor_grid is subscribed (with a camera_pose); each bad CameraInfo is followed by a good
frame to the raw node (waited for), so the floor hook converts it. Every ``check_every`` bad
messages a good frame is sent to each node and must come back on ~/labels within a timeout (the
node keeps answering).

Used by ``test/node/test_fuzz.py`` (a few hundred messages, in ``make test``) and
``benchmarks/soak.py`` (>= 10,000 messages, ``make soak``).
"""

from __future__ import annotations

import array
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from seg_ros import codec
from seg_ros.live.client import LiveClient
from seg_ros.live.domains import pick_domain
from seg_ros.live.process import NodeProcess
from seg_ros.live.wait import wait_for
from seg_ros.stamps import stamp_ns

KNOWN = sorted(codec.ENCODINGS) if hasattr(codec, "ENCODINGS") else ["rgb8", "bgr8", "mono8"]
U32 = 2**32 - 1
RAW, CMP = "/fuzz_raw", "/fuzz_cmp"


def _bytes(data: bytes) -> array.array:
    out = array.array("B")
    out.frombytes(data)
    return out


# ------------------------------------------------------------------------------ strategies

dims = st.one_of(st.sampled_from([0, 1, 2, 3, 480, 640, 65535, 65536, 2**31 - 1, U32]),
                 st.integers(0, U32), st.integers(0, 64))
encodings = st.one_of(st.sampled_from(KNOWN), st.sampled_from(
    ["", "RGB8", "rgb16", "32FC1", "16SC3", "jpeg", "8UC2", "yuv420", "bayer_rggb16", "nv12 "]),
    st.text(max_size=20))


@st.composite
def bad_images(draw: Any) -> dict[str, Any]:
    """Image fields: random dims/steps/encodings and data truncated, oversized or garbage
    (data is kept under 64 KB; the declared size may be anything up to 2**32-1 per field)."""
    enc = draw(encodings)
    h, w = draw(dims), draw(dims)
    bpp = draw(st.sampled_from([0, 1, 2, 3, 4]))
    step = draw(st.one_of(st.just(min(w * bpp, U32)), dims, st.just(max(w * bpp - 1, 0))))
    declared = h * step
    kind = draw(st.sampled_from(["empty", "truncated", "exact", "oversized", "random"]))
    if kind == "empty":
        size = 0
    elif kind == "truncated":
        size = draw(st.integers(0, max(0, min(declared - 1, 65536))))
    elif kind == "exact":
        size = declared if declared <= 65536 else draw(st.integers(0, 65536))
    elif kind == "oversized":
        size = min(declared, 32768) + draw(st.integers(1, 32768))
    else:
        size = draw(st.integers(0, 65536))
    fill = draw(st.sampled_from([0, 255, -1]))
    data = (np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
            if fill < 0 else bytes([fill]) * size)
    return dict(encoding=enc, height=h, width=w, step=step, data=data,
                is_bigendian=draw(st.integers(0, 255)), frame_id=draw(st.text(max_size=12)))


def _jpeg(rng_seed: int) -> bytes:
    rgb = np.random.default_rng(rng_seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return codec.encode_compressed(rgb, "jpeg", 80)[1]


def _png(rng_seed: int) -> bytes:
    rgb = np.random.default_rng(rng_seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return codec.encode_compressed(rgb, "png")[1]


JPEG, PNG = _jpeg(1), _png(2)


@st.composite
def bad_compressed(draw: Any) -> dict[str, Any]:
    """CompressedImage: garbage, magic + garbage, truncated / bit-flipped real JPEG and PNG,
    compressedDepth headers, odd formats."""
    fmt = draw(st.one_of(st.sampled_from(
        ["jpeg", "png", "", "rgb8; jpeg compressed bgr8", "mono8; png compressed mono8",
         "16UC1; compressedDepth png", "32FC1; compressedDepth", "tiff", "JPG"]),
        st.text(max_size=30)))
    kind = draw(st.sampled_from(["garbage", "jpeg_magic", "png_magic", "truncated_jpeg",
                                 "truncated_png", "flipped_jpeg", "flipped_png", "depth", "empty",
                                 "eoi_only"]))
    garbage = draw(st.binary(max_size=4096))
    if kind == "garbage":
        data = garbage
    elif kind == "jpeg_magic":
        data = b"\xff\xd8\xff" + garbage + b"\xff\xd9"
    elif kind == "png_magic":
        data = b"\x89PNG\r\n\x1a\n" + garbage
    elif kind in ("truncated_jpeg", "truncated_png"):
        src = JPEG if "jpeg" in kind else PNG
        data = src[: draw(st.integers(0, len(src) - 1))]
    elif kind in ("flipped_jpeg", "flipped_png"):
        flipped = bytearray(JPEG if "jpeg" in kind else PNG)
        for _ in range(draw(st.integers(1, 20))):
            i = draw(st.integers(0, len(flipped) - 1))
            flipped[i] = draw(st.integers(0, 255))
        data = bytes(flipped)
    elif kind == "depth":
        data = bytes(12) + b"\x89PNG\r\n\x1a\n" + garbage
    elif kind == "eoi_only":
        data = b"\xff\xd8\xff\xd9"
    else:
        data = b""
    return dict(format=fmt, data=data)


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, math.nan, math.inf, 1e308, 1e-308, 500.0]))


@st.composite
def bad_camera_infos(draw: Any) -> dict[str, Any]:
    """CameraInfo: zero / NaN / inf K, D of wrong length, unknown models, zero or huge size,
    odd binning and ROI."""
    k = draw(st.one_of(st.just([0.0] * 9), st.lists(floats, min_size=9, max_size=9),
                       st.just([500.0, 0, 320, 0, 500, 240, 0, 0, 1])))
    return dict(width=draw(dims), height=draw(dims), k=k,
                d=draw(st.lists(floats, max_size=16)),
                distortion_model=draw(st.one_of(st.sampled_from(
                    ["plumb_bob", "rational_polynomial", "equidistant", "", "fisheye"]),
                    st.text(max_size=12))),
                binning_x=draw(st.integers(0, U32)), binning_y=draw(st.integers(0, U32)),
                roi=(draw(dims), draw(dims), draw(dims), draw(dims), draw(st.booleans())))


def make_image(f: dict[str, Any], header: Any) -> Any:
    from sensor_msgs.msg import Image

    header.frame_id = f["frame_id"]
    m = Image(header=header, height=f["height"], width=f["width"], encoding=f["encoding"],
              step=f["step"], is_bigendian=f["is_bigendian"])
    m.data = _bytes(f["data"])
    return m


def make_compressed(f: dict[str, Any], header: Any) -> Any:
    from sensor_msgs.msg import CompressedImage

    return CompressedImage(header=header, format=f["format"], data=_bytes(f["data"]))


def make_camera_info(f: dict[str, Any], header: Any) -> Any:
    from sensor_msgs.msg import CameraInfo, RegionOfInterest

    x, y, w, h, rect = f["roi"]
    m = CameraInfo(header=header, width=f["width"], height=f["height"],
                   distortion_model=f["distortion_model"], binning_x=f["binning_x"],
                   binning_y=f["binning_y"],
                   roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h,
                                        do_rectify=rect))
    m.k = np.asarray(f["k"], np.float64)
    m.d = array.array("d", f["d"])
    return m


# -------------------------------------------------------------------------------- the run


class NodeDied(Exception):
    """A node process exited during the fuzz run."""


@dataclass
class FuzzReport:
    messages: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    crashes: int = 0                 # node processes that died
    unanswered: int = 0              # good frames after bad ones that got no output in time
    good_frames: int = 0
    rejected: dict[str, int] = field(default_factory=dict)   # per node, from /diagnostics
    accounted: dict[str, bool] = field(default_factory=dict)  # received == sum of outcomes
    failed: dict[str, int] = field(default_factory=dict)  # not a CodecError: a validation gap
    floor_errors: dict[str, int] = field(default_factory=dict)  # CameraInfo refused by the grid
    rejection_log_lines: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _FuzzRig:
    """The two nodes under fuzz, the client's publishers, label counters and ~/floor_grid
    subscriptions, and the good frame that must still come back."""

    def __init__(self, model: Path, seed: int, report: FuzzReport) -> None:
        from nav_msgs.msg import OccupancyGrid
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        domain = pick_domain()
        common = ["-p", f"model_path:={model}", "-p", "threads:=1", "-p", "use_tf:=false",
                  "-p", "camera_pose:=[0.0, 0.0, 1.0, 0.0, 0.4, 0.0]",
                  "-r", "image:=/fz/image", "-r", "image/compressed:=/fz/image/compressed",
                  "-r", "camera_info:=/fz/camera_info"]
        self.nodes = {RAW: NodeProcess(common, domain, "fuzz_raw"),
                      CMP: NodeProcess([*common, "-p", "input_transport:=compressed"], domain,
                                       "fuzz_cmp")}
        self.client, self.report, self._stamp = LiveClient(domain), report, 0
        self.raw_pub = self.client.publisher(Image, "/fz/image", depth=50)
        self.cmp_pub = self.client.publisher(CompressedImage, "/fz/image/compressed", depth=50)
        self.info_pub = self.client.publisher(CameraInfo, "/fz/camera_info", depth=50)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        for name in self.nodes:  # subscribed: the nodes compute their grids from the infos
            self.client.node.create_subscription(OccupancyGrid, f"{name}/floor_grid",
                                                 lambda _msg: None, qos)
        self.counters = {name: self.client.count_outputs(name, ("labels",))
                         for name in self.nodes}
        self.good_rgb = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), np.uint8)
        self.good_jpeg = codec.encode_compressed(self.good_rgb, "jpeg", 90)
        self.good_info = dict(width=64, height=48, k=[60.0, 0, 31.5, 0, 60.0, 23.5, 0, 0, 1],
                              d=[0.0] * 5, distortion_model="plumb_bob", binning_x=0,
                              binning_y=0, roi=(0, 0, 0, 0, False))

    def header(self) -> Any:
        from std_msgs.msg import Header

        self._stamp += 1
        h = Header(frame_id="fuzz_camera")
        h.stamp.sec, h.stamp.nanosec = 1_600_000_000 + self._stamp // 10**6, self._stamp % 10**6
        return h

    def good_image(self, h: Any) -> Any:
        return make_image(dict(encoding="rgb8", height=48, width=64, step=192,
                               data=self.good_rgb.tobytes(), is_bigendian=0,
                               frame_id="fuzz_camera"), h)

    def alive(self) -> bool:
        return all(n.alive() for n in self.nodes.values())

    def _publishing(self, name: str) -> bool:
        return self.nodes[name].alive() and self.client.node.count_publishers(
            f"{name}/labels") > 0

    def wait_up(self) -> None:
        """Both nodes up, subscribed and answering."""
        for name in self.nodes:
            wait_for(partial(self._publishing, name), 60, f"{name} to start")
        wait_for(lambda: self.raw_pub.get_subscription_count() >= 1
                 and self.cmp_pub.get_subscription_count() >= 1
                 and self.info_pub.get_subscription_count() >= 2, 30, "subscriptions")
        self.ask_good()

    def ask_good(self) -> None:
        """A good frame to each node (after a valid CameraInfo); each must answer."""
        self.info_pub.publish(make_camera_info(self.good_info, self.header()))
        jpeg = dict(format=self.good_jpeg[0], data=self.good_jpeg[1])
        for name, pub, make in ((RAW, self.raw_pub, self.good_image),
                                (CMP, self.cmp_pub, lambda h: make_compressed(jpeg, h))):
            ok = False
            for _ in range(3):  # re-sent: the mailbox keeps the newest, a bad one may win
                h = self.header()
                pub.publish(make(h))
                if self.counters[name].wait(stamp_ns(h), 10.0) is not None:
                    ok = True
                    break
            self.report.good_frames += 1
            self.report.unanswered += 0 if ok else 1

    def tally(self) -> None:
        """The nodes' own account from /diagnostics: every frame received has one outcome."""
        for name, proc in self.nodes.items():
            if not proc.alive():
                continue
            _level, _msg, v = self.client.diagnostics(name, timeout=5.0)
            outcomes = sum(int(v[k]) for k in ("frames_processed", "frames_dropped",
                                               "frames_rejected", "frames_failed",
                                               "frames_idle"))
            self.report.rejected[name] = int(v["frames_rejected"])
            self.report.failed[name] = int(v["frames_failed"])
            self.report.floor_errors[name] = int(v.get("floor_camera_info_errors", 0))
            self.report.accounted[name] = int(v["frames_received"]) == outcomes

    def close(self) -> None:
        self.client.close()
        for name, proc in self.nodes.items():
            rc = proc.stop()
            if rc not in (0, None) and rc != -2:
                self.report.crashes += 1
            self.report.rejection_log_lines[name] = proc.log().count("rejected a frame")


def _sender(rig: _FuzzRig, kind: str, strategy: Any, pub: Any, make: Any, examples: int,
            check_every: int, pace_s: float) -> Any:
    """A hypothesis test that publishes ``examples`` messages of ``kind``; every
    ``check_every`` messages a good frame must come back (NodeDied when a node is gone)."""

    @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(fields=strategy)
    def send(fields: dict[str, Any]) -> None:
        pub.publish(make(fields, rig.header()))
        rig.report.messages += 1
        if kind == "camera_info":  # a frame makes the floor hook convert this info
            h = rig.header()
            rig.raw_pub.publish(rig.good_image(h))
            rig.counters[RAW].wait(stamp_ns(h), 2.0)  # None after 2 s: go on regardless
        rig.report.by_kind[kind] = rig.report.by_kind.get(kind, 0) + 1
        if pace_s:
            time.sleep(pace_s)
        if rig.report.messages % check_every == 0:
            rig.ask_good()
            if not rig.alive():
                raise NodeDied

    return send


def run_fuzz(model: Path, n_messages: int, check_every: int = 50, seed: int = 0,
             pace_s: float = 0.0) -> FuzzReport:
    """Send ``n_messages`` malformed messages (a third of each kind) to two live nodes."""
    report, t_start = FuzzReport(), time.monotonic()
    rig = _FuzzRig(model, seed, report)
    try:
        rig.wait_up()
        kinds = [("image", bad_images(), rig.raw_pub, make_image),
                 ("compressed", bad_compressed(), rig.cmp_pub, make_compressed),
                 ("camera_info", bad_camera_infos(), rig.info_pub, make_camera_info)]
        for kind, strategy, pub, make in kinds:
            try:
                _sender(rig, kind, strategy, pub, make, -(-n_messages // len(kinds)),
                        check_every, pace_s)()
            except NodeDied:
                break
        time.sleep(0.5)
        if rig.alive():
            rig.ask_good()
        time.sleep(1.5)
        rig.tally()
    finally:
        rig.close()
        report.seconds = time.monotonic() - t_start
    return report
