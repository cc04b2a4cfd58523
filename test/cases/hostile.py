"""Hostile cases a field engineer throws at a live node, each with what the node must say.

A :class:`HostileRig` runs one node process (raw or compressed input, floor grid on with a
camera_pose, ``diagnostics.stall_s`` 1 s) and a client that streams good 64x48 frames and their
camera_info at 10 Hz, subscribes ~/labels and ~/floor_grid, and keeps a :class:`BlindMeter`:
the time any subscribed output was silent longer than the node's own limit while frames were
being sent and the latest /diagnostics said OK. A node that goes blind must say so, so that
figure must stay 0 through every case.

Each ``case_*`` function drives one defect found by hostile testing, asserts the level, message
and counters the node must report (not just that it survives) and returns what it measured.
Used by test/node/test_hostile.py (in ``make test``) and benchmarks/soak.py (``make soak``, timed);
the compressed-input cases are in cases.hostile_compressed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cases.hostile_images import jpeg
from seg_ros.live import LiveClient, NodeProcess, param_args, pick_domain, rss_mb, wait_for

OK, WARN, ERROR = 0, 1, 2
W, H = 64, 48
STALL_S = 1.0
DIAG_PERIOD_S = 1.0
K_GOOD = (60.0, 0.0, W / 2, 0.0, 60.0, H / 2, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------ the rig


class BlindMeter:
    """Seconds during which a subscribed output was silent beyond the node's own limit
    (``stall_s``, or 1.5 periods of the rate limit, plus one diagnostics period of reporting
    delay) while frames were sent and the latest diagnostics, received after the silence
    passed that limit, said OK."""

    def __init__(self, rig: HostileRig) -> None:
        self.rig = rig
        self.blind_s = 0.0
        self.episodes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.05):
            now = time.monotonic()
            dt, last = now - last, now
            rig = self.rig
            limit = max(STALL_S, 1.5 / rig.rate_hz if rig.rate_hz > 0 else 0.0)
            limit += DIAG_PERIOD_S + 0.5  # the next diagnostics tick, and scheduling
            diag = rig.client.diag.get(rig.node_fqn)
            if not rig.streaming or diag is None or diag[1] != OK:
                continue
            for name, t in list(rig.last_output.items()):
                quiet = now - max(t, rig.stream_since, rig.changed_at)
                if quiet > limit and diag[0] > now - DIAG_PERIOD_S - 0.5:
                    self.blind_s += dt
                    self.episodes.append(f"{name} silent {quiet:.1f} s with diagnostics OK")
                    break

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class HostileRig:
    """One node process under attack and the client that attacks and watches it."""

    def __init__(self, model: Path, name: str, compressed: bool = False,
                 extra: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        from nav_msgs.msg import OccupancyGrid
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        domain = pick_domain()
        self.domain = domain
        self.node_fqn = f"/{name}"
        self.compressed = compressed
        topic = f"/{name}_cam/image"
        values = {"model_path": model, "threads": 1, "use_tf": "false",
                  "camera_pose": "[0.0, 0.0, 1.0, 0.0, 0.4, 0.0]", "diagnostics.stall_s": STALL_S,
                  "input_transport": "compressed" if compressed else "raw",
                  "grid.resolution": 0.1, "grid.width": 4.0, "grid.height": 4.0, **(extra or {})}
        remap = f"{topic}/compressed" if compressed else topic
        sub = "image/compressed" if compressed else "image"
        self.node = NodeProcess([*param_args(values), "-r", f"{sub}:={remap}",
                                 "-r", f"camera_info:=/{name}_cam/camera_info",
                                 "-r", f"odom:=/{name}_odom"], domain, name=name, env=env)
        self.client = LiveClient(domain)
        self.img_pub = self.client.publisher(CompressedImage if compressed else Image, remap,
                                             depth=1)
        self.info_pub = self.client.publisher(CameraInfo, f"/{name}_cam/camera_info", depth=1)
        from nav_msgs.msg import Odometry

        self.odom_pub = self.client.publisher(Odometry, f"/{name}_odom", depth=50)
        # header -> the robot's nav_msgs/Odometry at its stamp (None: no odometry sent); sent
        # at 50 Hz: five messages per frame, stamped 20 ms apart up to the frame's stamp
        self.odom_maker: Callable[[Any], Any] | None = None
        self.stamp_offset_ns = 0  # added to every stamp (time going back: a negative offset)
        self.counts: dict[str, int] = {}  # messages per output watched with watch()
        self.last_msg: dict[str, Any] = {}
        self.rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
        self.info_k: tuple[float, ...] | Callable[[int], tuple[float, ...]] = K_GOOD
        self.info_extra: dict[str, Any] = {}
        self.image_maker: Callable[[Any], Any] | None = None  # header -> message (else good)
        self.zero_stamp = False
        self.rate_hz = 0.0  # the node's max_rate_hz as last set (the blind meter's allowance)
        self.changed_at = 0.0  # when the rate limit was last lifted (silence counts from then)
        self.last_output: dict[str, float] = {}
        self.labels_sizes: list[tuple[int, int]] = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.client.node.create_subscription(Image, f"{self.node_fqn}/labels", self._on_labels,
                                             qos)
        self.client.node.create_subscription(
            OccupancyGrid, f"{self.node_fqn}/floor_grid",
            lambda _m: self.last_output.__setitem__("floor_grid", time.monotonic()), qos)
        try:
            wait_for(lambda: self._ready(), 60, f"the node to start:\n{self.node.tail(30)}")
        except BaseException:  # leave no rclpy context or node process behind
            self.client.close()
            self.node.stop()
            raise
        self.streaming, self.stream_since, self.sent = False, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()
        self.blind = BlindMeter(self)

    def _ready(self) -> bool:
        assert self.node.alive(), f"node exited:\n{self.node.tail(30)}"
        return (self.img_pub.get_subscription_count() > 0
                and self.client.node.count_publishers(f"{self.node_fqn}/labels") > 0)

    def _on_labels(self, msg: Any) -> None:
        self.last_output["labels"] = time.monotonic()
        self.labels_sizes.append((msg.width, msg.height))

    # --- streaming -------------------------------------------------------------------------

    def start_streaming(self) -> None:
        self.stream_since = time.monotonic()
        self.streaming = True

    def _stream(self) -> None:
        from sensor_msgs.msg import CameraInfo
        from std_msgs.msg import Header

        k = 0
        while not self._stop.wait(0.1):
            if not self.streaming:
                continue
            k += 1
            h = Header(frame_id="hostile_camera")
            if not self.zero_stamp:
                h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns() + self.stamp_offset_ns,
                                                      10**9)
            info = CameraInfo(header=h, width=W, height=H, distortion_model="plumb_bob")
            kk = self.info_k(k) if callable(self.info_k) else self.info_k
            info.k = np.array(kk, dtype=np.float64)
            info.d = np.zeros(5)
            for key, value in self.info_extra.items():
                setattr(info, key, value)
            try:
                self._odometry(h)
                self.info_pub.publish(info)
                self.img_pub.publish(self.image_maker(h) if self.image_maker else self.good(h))
                self.sent += 1
            except Exception:  # context shut down at teardown
                return

    def _odometry(self, header: Any) -> None:
        """Five odometry messages (50 Hz) up to the frame's stamp, from ``odom_maker``."""
        from std_msgs.msg import Header

        maker = self.odom_maker
        if maker is None:
            return
        t = header.stamp.sec * 10**9 + header.stamp.nanosec
        for back in (80, 60, 40, 20, 0):
            h = Header(frame_id="odom")
            h.stamp.sec, h.stamp.nanosec = divmod(max(t - back * 10**6, 0), 10**9)
            msg = maker(h)
            if msg is not None:
                self.odom_pub.publish(msg)

    def watch(self, output: str, msg_type: Any, latched: bool = False, metered: bool = True
              ) -> Any:
        """Subscribe ``output`` of the node: counted in ``counts``, its last message kept, its
        arrival time in ``last_output`` when ``metered`` (the blind meter watches it);
        unwatch() ends it."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        def on(msg: Any) -> None:
            self.counts[output] = self.counts.get(output, 0) + 1
            self.last_msg[output] = msg
            if metered:
                self.last_output[output] = time.monotonic()

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                         else DurabilityPolicy.VOLATILE)
        return self.client.node.create_subscription(msg_type, f"{self.node_fqn}/{output}", on,
                                                    qos)

    def unwatch(self, output: str, sub: Any) -> None:
        self.client.node.destroy_subscription(sub)
        self.last_output.pop(output, None)
        self.changed_at = time.monotonic()

    def good(self, header: Any) -> Any:
        from sensor_msgs.msg import CompressedImage

        from seg_ros.ros.convert import byte_array, to_image_msg

        if self.compressed:
            return CompressedImage(header=header, format="jpeg", data=byte_array(jpeg(self.rgb)))
        return to_image_msg(self.rgb, "rgb8", header)

    # --- watching --------------------------------------------------------------------------

    def diag(self, pred: Callable[[int, str, dict[str, str]], bool], timeout: float,
             what: str) -> tuple[int, str, dict[str, str]]:
        """Wait for a /diagnostics status of the node for which ``pred(level, msg, values)``."""
        seen: list[tuple[int, str]] = []

        def check() -> Any:
            lvl, msg, values = self.client.diagnostics(self.node_fqn, timeout=5.0)
            seen.append((lvl, msg[:160]))
            return (lvl, msg, values) if pred(lvl, msg, values) else None

        try:
            return wait_for(check, timeout, what)
        except TimeoutError:
            raise AssertionError(f"never saw {what}; last: {seen[-4:]}\n{self.node.tail(20)}"
                                 ) from None

    def level(self, want: int, timeout: float = 15.0, contains: str = ""
              ) -> tuple[int, str, dict[str, str]]:
        return self.diag(lambda lvl, msg, _v: lvl == want and contains in msg, timeout,
                         f"level {want} with {contains!r}")

    def flowing(self, output: str = "labels", n: int = 3, timeout: float = 10.0) -> float:
        """Seconds until ``n`` new messages of ``output`` arrived (AssertionError if never)."""
        t0 = time.monotonic()
        counts = []

        def arrived() -> bool:
            counts.append(self.last_output.get(output, 0.0))
            return len({c for c in counts if c > t0}) >= n

        wait_for(arrived, timeout, f"{output} to flow")
        return time.monotonic() - t0

    def counter(self, key: str) -> int:
        return int(self.client.diagnostics(self.node_fqn, timeout=5.0)[2][key])

    def set_params(self, **values: Any) -> list[Any]:
        return self.client.set_params(self.node_fqn, **values)

    def set_param_msg(self, param: Any) -> Any:
        from rcl_interfaces.srv import SetParameters

        req = SetParameters.Request(parameters=[param.to_parameter_msg()])
        return self.client.call(f"{self.node_fqn}/set_parameters", SetParameters, req).results[0]

    def close(self) -> int | None:
        self.blind.close()
        self._stop.set()
        self._thread.join(2)
        self.client.close()
        return self.node.stop()


def closed_clean(rig: Any, start: Callable[[], None] | None = None) -> Iterator[Any]:
    """Run ``start`` and yield the rig (a fixture's body), then close it: its node must exit 0
    and never have been blind with /diagnostics OK."""
    try:
        if start is not None:
            start()
        yield rig
    finally:
        blind, episodes = rig.blind.blind_s, rig.blind.episodes[:3]
        rc = rig.close()
    assert rc == 0, f"{rig.node_fqn} did not shut down cleanly ({rc})"
    assert blind == 0.0, (f"{rig.node_fqn} was blind for {blind:.2f} s with diagnostics OK: "
                          f"{episodes}")


def settle(rig: HostileRig) -> None:
    """Good frames again, and the node back to OK with labels and grids flowing."""
    rig.info_k, rig.info_extra, rig.image_maker, rig.zero_stamp = K_GOOD, {}, None, False
    rig.odom_maker, rig.stamp_offset_ns = None, 0
    rig.flowing("floor_grid", timeout=20)
    rig.level(OK, timeout=20)


# ------------------------------------------------------------------------------ raw cases

BAD_CAMERA_INFOS: dict[str, dict[str, Any]] = {
    "NaN fx": {"k": (np.nan, 0, W / 2, 0, 60.0, H / 2, 0, 0, 1)},
    "NaN cx": {"k": (60.0, 0, np.nan, 0, 60.0, H / 2, 0, 0, 1)},
    "inf fy": {"k": (60.0, 0, W / 2, 0, np.inf, H / 2, 0, 0, 1)},
    "fx 1e300": {"k": (1e300, 0, W / 2, 0, 60.0, H / 2, 0, 0, 1)},
    "NaN in D": {"d": (np.nan, 0, 0, 0, 0)},
    "inf in D": {"d": (0, np.inf, 0, 0, 0)},
    "k1 1e6": {"d": (1e6, 0, 0, 0, 0)},
    "zero-size ROI, large offset": {"roi": (5000, 5000, 0, 0)},
}


def _camera_info_refused_after(before: int) -> Callable[[int, str, dict[str, str]], bool]:
    """A diagnostics predicate: WARN or worse about camera_info, with more camera_info errors
    counted than ``before``."""
    return lambda lvl, m, v: (lvl >= WARN and "camera_info" in m
                              and int(v["floor_camera_info_errors"]) > before)


def case_bad_camera_info(rig: HostileRig) -> dict[str, Any]:
    """Each broken camera_info: refused, counted, WARN/ERROR naming camera_info; labels flow."""
    from sensor_msgs.msg import RegionOfInterest

    seconds = {}
    for name, fields in BAD_CAMERA_INFOS.items():
        before = rig.counter("floor_camera_info_errors")
        t0 = time.monotonic()
        rig.info_k = tuple(fields.get("k", K_GOOD))
        extra: dict[str, Any] = {}
        if "d" in fields:
            extra["d"] = np.array(fields["d"], dtype=np.float64)
        if "roi" in fields:
            x, y, w, h = fields["roi"]
            extra["roi"] = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
        rig.info_extra = extra
        _l, msg, values = rig.diag(_camera_info_refused_after(before), 15, f"{name} reported")
        seconds[name] = time.monotonic() - t0
        assert "camera_info unusable" in values["stalled_outputs"] + msg, (name, msg)
        rig.flowing("labels")  # the image outputs keep coming
    settle(rig)
    return {"camera_info_cases": len(seconds), "camera_info_report_s_max": max(seconds.values())}


def case_no_visible_cell(rig: HostileRig) -> dict[str, Any]:
    """A camera looking at the sky sees no cell: every grid all unknown is an ERROR."""
    assert rig.set_params(camera_pose=[0.0, 0.0, 1.0, 0.0, -0.6, 0.0])[0].successful
    t0 = time.monotonic()
    _l, _m, values = rig.level(ERROR, contains="no visible cell")
    assert int(values["floor_empty_grids"]) > 0
    took = time.monotonic() - t0
    assert rig.set_params(camera_pose=[0.0, 0.0, 1.0, 0.0, 0.4, 0.0])[0].successful
    settle(rig)
    return {"no_visible_cell_report_s": took}


def case_no_pose(rig: HostileRig) -> dict[str, Any]:
    """~/floor_grid subscribed, no pose: WARN, then ERROR, naming the output and the cause."""
    from rclpy.parameter import Parameter

    assert rig.set_param_msg(Parameter("camera_pose", Parameter.Type.DOUBLE_ARRAY, [])).successful
    t0 = time.monotonic()
    rig.level(WARN, contains="floor_grid silent")
    t_warn = time.monotonic() - t0
    _l, msg, _v = rig.level(ERROR, contains="floor_grid silent")
    assert "no camera pose" in msg, msg
    t_err = time.monotonic() - t0
    rig.flowing("labels")
    assert rig.set_params(camera_pose=[0.0, 0.0, 1.0, 0.0, 0.4, 0.0])[0].successful
    settle(rig)
    return {"no_pose_warn_s": t_warn, "no_pose_error_s": t_err}


def case_huge_grid(rig: HostileRig) -> dict[str, Any]:
    """A 4 M-cell grid: its table is built beside the worker (labels keep flowing), the
    silent grid is reported as being built, then grids resume; then the small grid again."""
    assert rig.set_params(**{"grid.resolution": 0.05, "grid.width": 100.0,
                             "grid.height": 100.0, "grid.max_range": 100.0})[0].successful
    t0 = time.monotonic()
    labels_during = rig.flowing("labels", n=5)  # not held up by a multi-second build
    rig.level(WARN, contains="lookup table")
    rig.flowing("floor_grid", n=1, timeout=60)
    build_s = float(rig.client.diagnostics(rig.node_fqn)[2]["floor_lut_last_build_s"])
    took = time.monotonic() - t0
    assert rig.set_params(**{"grid.resolution": 0.1, "grid.width": 4.0, "grid.height": 4.0,
                             "grid.max_range": 8.0})[0].successful
    settle(rig)
    return {"huge_grid_build_s": build_s, "huge_grid_labels_5_frames_s": labels_during,
            "huge_grid_first_grid_s": took}


def case_flipping_camera_info(rig: HostileRig) -> dict[str, Any]:
    """A camera_info flipping between two values each frame is two cached tables, not a
    rebuild per frame: the build counter stops, grids keep flowing."""
    k_other = (61.0, *K_GOOD[1:])
    rig.info_k = lambda k: K_GOOD if k % 2 else k_other
    rig.flowing("floor_grid", n=5)
    builds = rig.counter("floor_lut_builds")
    rig.flowing("floor_grid", n=10)
    more = rig.counter("floor_lut_builds") - builds
    assert more == 0, f"{more} table builds for two alternating camera_infos"
    settle(rig)
    return {"flipping_extra_builds": more}


def case_rate_limits(rig: HostileRig) -> dict[str, Any]:
    """max_rate_hz 1e-12 is refused (it killed the worker); 0.01 then 0 resumes at once."""
    res = rig.set_params(max_rate_hz=1e-12)[0]
    assert not res.successful and "0.01" in res.reason, res.reason
    assert rig.set_params(max_rate_hz=0.01)[0].successful
    rig.rate_hz = 0.01
    time.sleep(2.0)  # the worker is now in a 100 s wait
    rig.changed_at = time.monotonic()
    assert rig.set_params(max_rate_hz=0.0)[0].successful
    rig.rate_hz = 0.0
    resumed = rig.flowing("labels", n=1, timeout=5)
    assert rig.node.alive()
    settle(rig)
    return {"rate_0_01_then_0_resume_s": resumed}


def case_unstamped(rig: HostileRig) -> dict[str, Any]:
    """Frames with a zero stamp: counted as unstamped, latency stays meaningful."""
    before = rig.counter("frames_unstamped")
    rig.zero_stamp = True
    rig.flowing("labels", n=5)
    rig.zero_stamp = False
    _l, _m, values = rig.diag(lambda _l, _m, v: int(v["frames_unstamped"]) > before, 10,
                              "frames_unstamped to count")
    rig.flowing("labels", n=5)
    values = rig.client.diagnostics(rig.node_fqn)[2]
    median = float(values["latency_stamp_median_ms"])
    assert median < 10_000, f"stamp latency median {median} ms: zero stamps were counted"
    return {"unstamped_counted": int(values["frames_unstamped"]) - before,
            "latency_stamp_median_ms": median}


def case_parameter_refusals(rig: HostileRig) -> dict[str, Any]:
    """A typo and a wrong type are refused with readable reasons, counted, and WARN."""
    before = rig.counter("parameter_refusals")
    typo = rig.set_params(overlay_alfa=0.3)[0]
    assert not typo.successful and "did you mean overlay_alpha" in typo.reason, typo.reason
    wrong = rig.set_params(overlay_alpha="high")[0]
    assert not wrong.successful and "double" in wrong.reason.lower(), wrong.reason
    assert "'3'" not in wrong.reason and "'4'" not in wrong.reason, wrong.reason
    _l, _m, values = rig.level(WARN, contains="parameter refused")
    assert int(values["parameter_refusals"]) >= before + 2
    rig.level(OK)
    return {"refusals_counted": int(values["parameter_refusals"]) - before}


def case_huge_raw_image(rig: HostileRig) -> dict[str, Any]:
    """A 40000x40000 rgb8 Image (declared; 16 bytes of data) is rejected by max_input_pixels
    before any allocation, counted, and the next good frame is processed."""
    from sensor_msgs.msg import Image

    from seg_ros.ros.convert import byte_array

    before = rig.counter("frames_rejected")
    rss0 = rss_mb(rig.node.pid)
    rig.image_maker = lambda h: Image(header=h, height=40000, width=40000, encoding="rgb8",
                                      step=120000, data=byte_array(bytes(16)))
    rig.diag(lambda lvl, _m, v: lvl >= WARN and int(v["frames_rejected"]) > before
             and "max_input_pixels" in v["last_error"], 15, "the huge raw image rejected")
    rig.image_maker = None
    rig.flowing("labels")
    settle(rig)
    return {"huge_raw_rss_growth_mb": rss_mb(rig.node.pid) - rss0}


RAW_CASES = (case_bad_camera_info, case_no_visible_cell, case_no_pose, case_huge_grid,
             case_flipping_camera_info, case_rate_limits, case_unstamped,
             case_parameter_refusals, case_huge_raw_image)
