"""Hostile cases on a node's other sensors: several cameras behind one merged grid, and depth.

Two rigs, each one node process and a client streaming good frames at 10 Hz and watching what a
robot would watch, with cases.hostile's :class:`~cases.hostile.BlindMeter`:

- :class:`CamerasRig`: ``cameras:=[front, rear]`` with ``grid.merge``; only the merged
  ~/floor_grid is subscribed (what Nav2 takes). A camera that stops, or whose camera_info turns
  to zeros, must be WARN naming that camera (:data:`CAMERA_CASES`).
- :class:`DepthRig`: one camera with ``depth/image`` (+ ``depth/camera_info``) and ~/points
  subscribed. Rejected depth, a depth stream at 150 Hz, depth at 1280x720 and a depth
  camera_info cycling through six values (:data:`DEPTH_CASES`).

Each ``case_*`` asserts the level, message and counters the node must report and returns what
it measured. Used by test/node/test_hostile_sensors.py and benchmarks/soak.py (``make soak``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cases.hostile import (
    DIAG_PERIOD_S,
    K_GOOD,
    OK,
    STALL_S,
    WARN,
    BlindMeter,
    H,
    W,
)
from seg_ros.live import LiveClient, NodeProcess, param_args, pick_domain, rss_mb, wait_for

FRONT_POSE = "[0.0, 0.0, 1.0, 0.0, 0.4, 0.0]"
REAR_POSE = "[0.0, 0.0, 1.0, 0.0, 0.4, 3.14159]"
GRID = {"grid.resolution": 0.1, "grid.width": 4.0, "grid.height": 4.0, "grid.origin_x": -2.0,
        "grid.origin_y": -2.0, "diagnostics.stall_s": STALL_S, "use_tf": "false", "threads": 1}


def camera_info(header: Any, width: int = W, height: int = H,
                k: tuple[float, ...] = K_GOOD) -> Any:
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.k = np.array(k, dtype=np.float64)
    info.d = np.zeros(5)
    return info


def scaled_k(width: int, height: int, f_scale: float = 1.0) -> tuple[float, ...]:
    """K_GOOD's camera at another resolution (the same field of view)."""
    s = width / W
    return (K_GOOD[0] * s * f_scale, 0.0, width / 2, 0.0, K_GOOD[4] * s * f_scale, height / 2,
            0.0, 0.0, 1.0)


def depth_image(header: Any, width: int = W, height: int = H, mm: int = 2000,
                encoding: str = "16UC1", truncate: bool = False) -> Any:
    """A flat depth image (``mm`` millimetres everywhere); ``truncate`` keeps half its bytes."""
    from sensor_msgs.msg import Image

    from seg_ros.ros.convert import byte_array

    data = np.full((height, width), mm, np.uint16).tobytes()
    step = 2 * width
    if encoding == "rgb8":
        data, step = bytes(3 * width * height), 3 * width
    return Image(header=header, height=height, width=width, encoding=encoding, step=step,
                 data=byte_array(data[:len(data) // 2] if truncate else data))


class _Rig:
    """One node process, its client, a 10 Hz stream thread and the blind meter."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.domain = pick_domain()
        self.node_fqn = f"/{name}"
        self.node = NodeProcess(args, self.domain, name=name)
        self.client = LiveClient(self.domain)
        self.last_output: dict[str, float] = {}
        self.rate_hz, self.changed_at = 0.0, 0.0
        self.streaming, self.stream_since = False, 0.0
        self._stop = threading.Event()
        self.blind: BlindMeter | None = None

    def _start(self, ready: Callable[[], bool]) -> None:
        try:
            wait_for(lambda: self.node.alive() and ready(), 90,
                     f"the node to start:\n{self.node.tail(30)}")
        except BaseException:
            self.client.close()
            self.node.stop()
            raise
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self.blind = BlindMeter(self)  # type: ignore[arg-type]  # the attributes it reads
        self.stream_since, self.streaming = time.monotonic(), True

    def _loop(self) -> None:
        from std_msgs.msg import Header

        while not self._stop.wait(0.1):
            h = Header(frame_id="hostile_camera")
            h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns(), 10**9)
            try:
                self.tick(h)
            except Exception:  # the context shut down at teardown
                return

    def tick(self, header: Any) -> None:
        raise NotImplementedError

    def watch(self, topic: str, msg_type: Any, key: str) -> Any:
        """Subscribe a node output raw (no deserialisation); its arrivals go to the meter."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        return self.client.node.create_subscription(
            msg_type, topic, lambda _raw: self.last_output.__setitem__(key, time.monotonic()),
            qos, raw=True)

    def diag(self, pred: Callable[[int, str, dict[str, str]], bool], timeout: float,
             what: str) -> tuple[int, str, dict[str, str]]:
        seen: list[tuple[int, str]] = []

        def check() -> Any:
            lvl, msg, values = self.client.diagnostics(self.node_fqn, timeout=5.0)
            seen.append((lvl, msg[:200]))
            return (lvl, msg, values) if pred(lvl, msg, values) else None

        try:
            return wait_for(check, timeout, what)
        except TimeoutError:
            raise AssertionError(f"never saw {what}; last: {seen[-3:]}\n{self.node.tail(15)}"
                                 ) from None

    def warn_with(self, *words: str, timeout: float = 20.0) -> tuple[int, str, dict[str, str]]:
        """WARN or worse (a silent output turns ERROR) with all of ``words`` in the message."""
        return self.diag(lambda lvl, m, _v: lvl >= WARN and all(w in m for w in words), timeout,
                         f"WARN with {words}")

    def ok(self, timeout: float = 20.0) -> None:
        self.diag(lambda lvl, _m, _v: lvl == OK, timeout, "level OK")

    def flowing(self, output: str, n: int = 3, timeout: float = 20.0) -> None:
        t0, seen = time.monotonic(), set()

        def arrived() -> bool:
            t = self.last_output.get(output, 0.0)
            if t > t0:
                seen.add(t)
            return len(seen) >= n

        wait_for(arrived, timeout, f"{output} to flow:\n{self.node.tail(10)}")

    def counter(self, key: str) -> int:
        return int(self.client.diagnostics(self.node_fqn, timeout=5.0)[2][key])

    def close(self) -> int | None:
        if self.blind is not None:
            self.blind.close()
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join(2)
        self.client.close()
        return self.node.stop()


# ------------------------------------------------------------------------- several cameras


class CamerasRig(_Rig):
    """``cameras:=[front, rear]``, ``grid.merge``, only the merged ~/floor_grid subscribed."""

    def __init__(self, model: Path, name: str = "hostile_cams") -> None:
        from nav_msgs.msg import OccupancyGrid
        from sensor_msgs.msg import CameraInfo, Image

        values = {"model_path": model, "cameras": "[front, rear]", "grid.merge": "true",
                  "front.camera_pose": FRONT_POSE, "rear.camera_pose": REAR_POSE, **GRID}
        super().__init__(name, [*param_args(values), "-r", f"__ns:=/{name}_ns"])
        self.node_fqn = f"/{name}_ns/{name}"
        self.pubs = {c: self.client.publisher(Image, f"/{name}_ns/{c}/image", depth=1)
                     for c in ("front", "rear")}
        self.info_pubs = {c: self.client.publisher(CameraInfo, f"/{name}_ns/{c}/camera_info",
                                                   depth=1) for c in ("front", "rear")}
        self.stopped: set[str] = set()
        self.zero_info: set[str] = set()
        self.rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
        self.watch(f"{self.node_fqn}/floor_grid", OccupancyGrid, "floor_grid")
        self._start(lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values()))

    def tick(self, header: Any) -> None:
        from seg_ros.ros.convert import to_image_msg

        for cam in ("front", "rear"):
            if cam in self.stopped:
                continue
            info = camera_info(header, k=(0.0,) * 9 if cam in self.zero_info else K_GOOD)
            if cam in self.zero_info:
                info.width = info.height = 0
                info.d = np.zeros(0)
                info.distortion_model = ""
            self.info_pubs[cam].publish(info)
            self.pubs[cam].publish(to_image_msg(self.rgb, "rgb8", header))


def case_camera_goes_dark(rig: CamerasRig) -> dict[str, Any]:
    """The rear camera stops while the front's frames keep the merged grid going: WARN naming
    the rear camera and its images; OK again once it resumes."""
    rig.flowing("floor_grid")
    rig.ok()
    t0 = time.monotonic()
    rig.stopped.add("rear")
    _l, msg, _v = rig.warn_with("camera rear", "no images", timeout=30)
    took = time.monotonic() - t0
    assert "front" not in msg.split("camera rear")[0], msg
    rig.flowing("floor_grid")  # the merge goes on with the front camera
    # ~/rear/labels subscribed too: its silence is explained by the rear camera's images
    from sensor_msgs.msg import Image

    sub = rig.watch(f"{rig.node_fqn}/rear/labels", Image, "rear/labels")
    try:
        _l, msg, _v = rig.warn_with("rear/labels silent", "no images on", "rear/image")
        assert "although images arrive" not in msg, msg
    finally:
        rig.client.node.destroy_subscription(sub)
        rig.last_output.pop("rear/labels", None)
    rig.stopped.clear()
    rig.ok(timeout=30)
    return {"camera_dark_report_s": took}


def case_camera_info_zeros(rig: CamerasRig) -> dict[str, Any]:
    """The rear camera's camera_info turns to all zeros: its grid is not made, the merged grid
    goes on without it: WARN naming the rear camera and why; OK again once it is good."""
    rig.ok()
    t0 = time.monotonic()
    rig.zero_info.add("rear")
    _l, _msg, _v = rig.warn_with("camera rear", "floor grid", "camera_info", timeout=30)
    took = time.monotonic() - t0
    rig.flowing("floor_grid")
    rig.zero_info.clear()
    rig.ok(timeout=30)
    return {"camera_info_zeros_report_s": took}


CAMERA_CASES = (case_camera_goes_dark, case_camera_info_zeros)


# ------------------------------------------------------------------------------------ depth


class DepthRig(_Rig):
    """One camera with depth; ~/labels and ~/points subscribed."""

    def __init__(self, model: Path, name: str = "hostile_depth") -> None:
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        cam = f"/{name}_cam"
        values = {"model_path": model, "camera_pose": FRONT_POSE, **GRID}
        super().__init__(name, [*param_args(values), "-r", f"image:={cam}/image",
                                "-r", f"camera_info:={cam}/camera_info",
                                "-r", f"depth/image:={cam}/depth",
                                "-r", f"depth/camera_info:={cam}/depth_info"])
        self.img_pub = self.client.publisher(Image, f"{cam}/image", depth=1)
        self.info_pub = self.client.publisher(CameraInfo, f"{cam}/camera_info", depth=1)
        self.depth_pub = self.client.publisher(Image, f"{cam}/depth", depth=50)
        self.depth_info_pub = self.client.publisher(CameraInfo, f"{cam}/depth_info", depth=1)
        self.rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
        # header -> the depth image sent with each colour frame (None: none with the frame)
        self.depth_maker: Callable[[Any], Any] | None = depth_image
        self.depth_info_maker: Callable[[Any, int], Any] | None = None  # (header, frame no.)
        self.colour_offset_ns = 0  # added to the colour frame's stamp (< 0: stamped earlier)
        self.frames = 0
        self.watch(f"{self.node_fqn}/labels", Image, "labels")
        self.watch(f"{self.node_fqn}/points", PointCloud2, "points")
        self._start(lambda: self.img_pub.get_subscription_count() > 0
                    and self.depth_pub.get_subscription_count() > 0)

    def tick(self, header: Any) -> None:
        from std_msgs.msg import Header

        from seg_ros.ros.convert import to_image_msg

        self.frames += 1
        if self.depth_maker is not None:
            self.depth_pub.publish(self.depth_maker(header))
        if self.depth_info_maker is not None:
            self.depth_info_pub.publish(self.depth_info_maker(header, self.frames))
        t = header.stamp.sec * 10**9 + header.stamp.nanosec + self.colour_offset_ns
        h = Header(frame_id=header.frame_id)
        h.stamp.sec, h.stamp.nanosec = divmod(t, 10**9)
        self.info_pub.publish(camera_info(h))
        self.img_pub.publish(to_image_msg(self.rgb, "rgb8", h))

    def settle(self) -> None:
        self.depth_maker, self.depth_info_maker, self.colour_offset_ns = depth_image, None, 0
        self.flowing("points")
        self.ok(timeout=30)


def case_depth_rejected_named(rig: DepthRig) -> dict[str, Any]:
    """Each depth fault is reported with its own cause, the latest one, not a counter that was
    once non-zero: a depth image of another size without its camera_info, then rgb8 sent as
    depth, truncated depth data, and a depth stream 5 s behind (its real gap named)."""
    rig.settle()
    rig.depth_maker = lambda h: depth_image(h, 2 * W, 2 * H)  # no depth/camera_info for it
    rig.warn_with("depth", "camera_info")
    rig.depth_maker = lambda h: depth_image(h, encoding="rgb8")
    _l, msg, values = rig.warn_with("depth image rejected", "rgb8")
    assert int(values["depth_rejected"]) > 0, values
    rig.depth_maker = lambda h: depth_image(h, truncate=True)
    rig.warn_with("depth image rejected", "truncated")
    rig.depth_maker = None
    rig.colour_offset_ns = 5 * 10**9  # the colour frames 5 s ahead of the last depth image
    _l, msg, values = rig.diag(lambda lvl, m, _v: lvl >= WARN and "depth.max_skew_ms" in m
                               and "the nearest is" in m, 20, "the real gap named")
    gap_ms = float(msg.split("the nearest is ")[1].split(" ms")[0])
    assert gap_ms > 4000, msg
    assert abs(float(values["depth_last_skew_ms"]) - gap_ms) < 1500, values
    rig.settle()
    return {"depth_reported_gap_ms": gap_ms}


def _depth_stream(rig: DepthRig, hz: float, stop: threading.Event) -> None:
    """Depth images at ``hz`` stamped at the wall clock, in their own thread."""
    from std_msgs.msg import Header

    period, t0, k = 1.0 / hz, time.monotonic(), 0
    while not stop.is_set():
        k += 1
        time.sleep(max(0.0, t0 + k * period - time.monotonic()))
        h = Header(frame_id="hostile_camera")
        h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns(), 10**9)
        try:
            rig.depth_pub.publish(depth_image(h))
        except Exception:
            return


def case_depth_150hz(rig: DepthRig) -> dict[str, Any]:
    """Depth at 150 Hz and colour frames arriving 150 ms after their stamp (an ISP's delay):
    the depth images of that moment are still kept (a span of stamp time, not the last 16,
    which held ~107 ms), so most colour frames find their twin (over half on a loaded 2-core
    machine that drops some 150 Hz depth in transport; 1 of 48 with the last 16 kept)."""
    rig.settle()
    stop = threading.Event()
    thread = threading.Thread(target=_depth_stream, args=(rig, 150.0, stop), daemon=True)
    rig.depth_maker = None
    rig.colour_offset_ns = -150 * 10**6
    thread.start()
    try:
        time.sleep(3.0)  # the span adapts to the latency seen
        v0 = rig.client.diagnostics(rig.node_fqn, timeout=5.0)[2]
        time.sleep(4.0)
        v1 = rig.client.diagnostics(rig.node_fqn, timeout=5.0)[2]
    finally:
        stop.set()
        thread.join(2)
    matched = int(v1["depth_matched"]) - int(v0["depth_matched"])
    unmatched = int(v1["depth_unmatched"]) - int(v0["depth_unmatched"])
    share = matched / max(matched + unmatched, 1)
    assert matched > 10 and share > 0.5, (matched, unmatched, v1.get("depth_kept_span_ms"))
    rig.settle()
    return {"depth_150hz_matched_share": share}


def case_depth_other_resolution(rig: DepthRig) -> dict[str, Any]:
    """1280x720 depth with its camera_info onto the 64x48 colour image: the maps are built
    beside the worker (labels keep flowing), the node's memory grows by tens of MB, not the
    ~500 MB cv2.projectPoints' Jacobian took, and the cloud comes out."""
    rig.settle()
    rss0 = rss_mb(rig.node.pid)
    peak = rss0
    dw, dh = 1280, 720
    rig.depth_info_maker = lambda h, _k: camera_info(h, dw, dh, scaled_k(dw, dh))
    rig.depth_maker = lambda h: depth_image(h, dw, dh)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        peak = max(peak, rss_mb(rig.node.pid))
        if rig.last_output.get("points", 0.0) > t0 + 1.0:
            break
        time.sleep(0.05)
    rig.flowing("labels", n=5)
    rig.flowing("points", n=3, timeout=30)
    for _ in range(20):
        peak = max(peak, rss_mb(rig.node.pid))
        time.sleep(0.05)
    growth = peak - rss0
    assert growth < 250, f"RSS grew {growth:.0f} MB for a 1280x720 depth map"
    rig.settle()
    return {"depth_1280x720_rss_growth_mb": growth}


def case_depth_info_cycling(rig: DepthRig) -> dict[str, Any]:
    """A depth camera_info (320x240) cycling through six calibrations: six map builds, then
    cache hits (not a rebuild per frame), and WARN that it keeps changing."""
    rig.settle()
    dw, dh = 320, 240
    builds0 = rig.counter("depth_map_builds")
    rig.depth_info_maker = lambda h, k: camera_info(h, dw, dh, scaled_k(dw, dh, 1 + k % 6 / 50))
    rig.depth_maker = lambda h: depth_image(h, dw, dh)
    _l, _msg, _v = rig.warn_with("camera_info changed")
    rig.flowing("points", n=5)
    builds1 = rig.counter("depth_map_builds")
    rig.flowing("points", n=10)
    builds2 = rig.counter("depth_map_builds")
    assert builds1 - builds0 <= 7 and builds2 == builds1, (builds0, builds1, builds2)
    rig.settle()
    return {"depth_cycling_builds": builds2 - builds0}


DEPTH_CASES = (case_depth_rejected_named, case_depth_150hz, case_depth_other_resolution,
               case_depth_info_cycling)


def run(model: Path) -> dict[str, Any]:
    """Every case here, timed; ``blind_seconds`` of the two rigs (``make soak``)."""
    out: dict[str, Any] = {}
    blind = 0.0
    plan: tuple[tuple[Callable[[Path], Any], tuple[Callable[[Any], dict[str, Any]], ...]], ...] \
        = ((CamerasRig, CAMERA_CASES), (DepthRig, DEPTH_CASES))
    for make, cases in plan:
        rig = make(model)
        try:
            for case in cases:
                t0 = time.monotonic()
                out.update(case(rig))
                name = case.__name__.removeprefix("case_")
                out[f"hostile_{name}_s"] = time.monotonic() - t0
                print(f"  {case.__name__}: {out[f'hostile_{name}_s']:.1f} s", flush=True)
        finally:
            blind += rig.blind.blind_s if rig.blind is not None else 0.0
            out[f"{type(rig).__name__}_exit_code"] = rig.close()
    out["sensors_blind_seconds"] = blind
    return out


__all__ = ["CAMERA_CASES", "DEPTH_CASES", "DIAG_PERIOD_S", "CamerasRig", "DepthRig", "run"]
