"""SegmentationNode: camera images in; labels, confidence, colour mask, overlay and (later) a
floor grid out, each with the input header and at the input size.

Threads: an intake thread (seg_ros.ros.intake) takes each camera image off DDS and drops it
into a one-slot :class:`Mailbox` (latest frame wins); the executor thread runs camera_info, the
diagnostics timer and the parameter services. ``workers`` worker threads (default one, each
with its own engine) decode -> segment -> publish, and compute only the outputs somebody
subscribes to (confidence is not even asked of the model when nobody listens to ~/confidence).
Outputs go out most-needed first: labels, floor grid, confidence, then the rendered colour mask
and overlay.

Topics (relative names: remap them, e.g. ``-r image:=/camera/image_raw``):
    in:  image (sensor_msgs/Image) or image/compressed (CompressedImage), camera_info
    out: ~/labels, ~/confidence, ~/color_mask, ~/overlay (sensor_msgs/Image),
         ~/label_info (seg_ros_msgs/SegmentationInfo, transient-local), /diagnostics,
         ~/floor_grid (nav_msgs/OccupancyGrid, see seg_ros.ros.floor_hook)
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from seg_ros.engines import open_engine
from seg_ros.errors import CodecError, ConfigError, is_user_error
from seg_ros.render import Palette
from seg_ros.ros import convert, intake, memory, params
from seg_ros.ros.floor_hook import FloorGrid
from seg_ros.segmenter import Segmenter

NODE_NAME = "segmentation_node"
OUTPUTS = ("labels", "confidence", "color_mask", "overlay")
LATENCY_WINDOW = 300  # frames kept for the latency percentiles in /diagnostics
STALE_INPUT_S = 5.0   # no image for this long -> diagnostics WARN
STAGES = ("decode", "preprocess", "engine", "postprocess", "render", "publish", "worker")

try:  # the generated interface is optional: a source tree without it built still segments
    from seg_ros.msg import SegmentationInfo
except ImportError:  # pragma: no cover - depends on the install
    SegmentationInfo = None


# ------------------------------------------------------------------------------- mailbox


@dataclass
class Frame:
    """A received message, when it arrived (time.monotonic(), seconds) and its arrival number."""

    msg: Any
    t_receive: float
    seq: int = 0


class Mailbox:
    """A one-slot, thread-safe mailbox: :meth:`put` never blocks and overwrites the unprocessed
    frame (counted in :attr:`dropped`), so the worker always gets the newest frame and latency
    cannot build up the way it does in a queue."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: Frame) -> bool:
        """Store ``item``; True when it replaced a frame nobody had taken (a drop)."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame (emptying the slot); None on timeout or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        """Wake and release a waiting :meth:`take` for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class OutputOrder:
    """Each output in arrival order with several workers: a frame publishes an output once
    every older frame still in flight has published (or passed) it. Consumers never see time go
    backwards and no finished work is thrown away; a newer frame that finishes first waits for
    the older one (usually a fraction of a millisecond: workers start frames one after another).

    Sequence numbers are arrival numbers, not stamps, so a bag replayed in a loop or a sim
    clock reset is not mistaken for old frames. One output is published by one frame at a time.
    """

    WAIT_S = 1.0  # an older frame stuck this long (an engine hanging) stops holding others up

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._passed: dict[int, set[str]] = {}  # frame in flight -> outputs it is done with

    def begin(self, seq: int) -> None:
        with self._cond:
            self._passed[seq] = set()

    def end(self, seq: int) -> None:
        """The frame is done (or failed): it holds up no output any more."""
        with self._cond:
            self._passed.pop(seq, None)
            self._cond.notify_all()

    @contextlib.contextmanager
    def turn(self, output: str, seq: int) -> Iterator[None]:
        """Wait until ``output`` is this frame's to publish; mark it passed afterwards."""
        with self._cond:
            self._cond.wait_for(lambda: all(
                output in done for t, done in self._passed.items() if t < seq), self.WAIT_S)
        try:
            yield
        finally:
            with self._cond:
                if seq in self._passed:
                    self._passed[seq].add(output)
                self._cond.notify_all()


# ---------------------------------------------------------------------------- floor hook


class FloorHook(Protocol):
    """What the floor-grid module plugs into the node (see ``SegmentationNode.floor``).

    ``wanted()`` is asked once per frame (True when ~/floor_grid has subscribers; then the
    labels are computed even if nobody listens to ~/labels); ``needs_confidence()`` asks the
    model for confidence too; ``__call__`` gets the labels at the input size, the input header,
    the latest CameraInfo and the confidence (or None) and publishes the grid itself. Runs on
    the worker thread. ``diagnostics_values()`` is merged into /diagnostics.
    """

    def wanted(self) -> bool: ...

    def needs_confidence(self) -> bool: ...

    def __call__(self, labels: np.ndarray, header: Header, camera_info: CameraInfo | None,
                 confidence: np.ndarray | None) -> None: ...

    def diagnostics_values(self) -> dict[str, str]: ...


# ------------------------------------------------------------------------------ counters


@dataclass
class Stats:
    """Counters since start; the worker writes, the diagnostics timer reads (GIL-atomic)."""

    received: int = 0
    processed: int = 0          # frames segmented and published
    rejected: int = 0           # bad input (decode failed)
    failed: int = 0             # engine / publish errors
    idle: int = 0               # frames skipped because no output had a subscriber
    last_error: str = ""
    last_receive: float = 0.0   # monotonic
    computed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, 0))
    lat_receive_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    lat_stamp_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    engine_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    lock: threading.Lock = field(default_factory=threading.Lock)  # counters, with workers > 1
    # per-stage worker times (ms) of processed frames: decode, preprocess, engine, postprocess,
    # render (colour mask + overlay), publish (to_image_msg + publish), worker (take -> done)
    stage_ms: dict[str, collections.deque] = field(default_factory=lambda: {
        k: collections.deque(maxlen=LATENCY_WINDOW) for k in STAGES})

    def bump(self, name: str, n: int = 1) -> None:
        """Add to a counter (workers write concurrently: += alone could lose counts)."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


def _percentiles(samples: collections.deque) -> tuple[float, float]:
    if not samples:
        return float("nan"), float("nan")
    a = np.fromiter(list(samples), np.float64)
    return float(np.median(a)), float(np.percentile(a, 99))


# ---------------------------------------------------------------------------------- node


class SegmentationNode(Node):
    """Semantic segmentation of a camera stream (see the module docstring for the topics).

    Raises a :class:`~seg_ros.errors.SegRosError` (one clear line, see :func:`main`) when a
    parameter is invalid or the model cannot be opened.
    """

    param_refusals = 0          # parameter sets refused since start
    last_param_error = ""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            self.startup, self.live = params.declare(self)
        except rclpy.exceptions.ParameterException as e:
            raise ConfigError(f"invalid parameter: {e}: fix the value or the params file") from None
        s = self.startup
        # one engine per worker: engine buffers and execution contexts are per caller
        self.segmenters = [Segmenter(open_engine(s.model_path, s.backend, s.device, s.threads))
                           for _ in range(s.workers)]
        self.segmenter = self.segmenters[0]
        self.engine = self.segmenter.engine
        self.card = self.segmenter.card
        self.palette = Palette.from_card(self.card)
        self.labels_encoding = "mono8" if self.card.num_classes <= 255 else "mono16"
        self._filter_src = self.live.class_filter
        self.palette.set_visible(
            params.parse_class_filter(self.live.class_filter, self.card.class_names))
        self.stats = Stats()
        self.mailbox = Mailbox()
        self.order = OutputOrder()
        self._take_lock = threading.Lock()  # max_rate_hz holds across workers
        self._next_start = 0.0
        self.camera_info: CameraInfo | None = None
        # Hook for ~/floor_grid (seg_ros.floor): set to a FloorHook; None = no floor grid.
        self.floor: FloorHook | None = None

        out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: self.create_publisher(Image, f"~/{name}", out_qos) for name in OUTPUTS}
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.info_pub = None
        if SegmentationInfo is None:
            self.get_logger().warning(
                "seg_ros_msgs is not importable: ~/label_info is disabled (build msg/ with colcon, "
                "or scripts/build_msgs.sh in a venv)")
        else:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.info_pub = self.create_publisher(SegmentationInfo, "~/label_info", latched)
            self.info_pub.publish(self._label_info())

        in_qos = params.qos_profile(s.qos_reliability, s.qos_depth, s.qos_durability)
        # images bypass the executor (seg_ros.ros.intake): 1.8 ms less from publish to mailbox
        group = intake.OwnThreadGroup() if intake.available() else None
        if s.input_transport == "compressed":
            self._decode: Callable[[Any], np.ndarray] = convert.compressed_to_rgb
            self.image_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, in_qos, callback_group=group)
        else:
            self._decode = convert.image_to_rgb
            self.image_sub = self.create_subscription(Image, "image", self._on_image, in_qos,
                                                      callback_group=group)
        self.intake = None if group is None else intake.Intake(
            self.image_sub, self.context, self._on_image, self._on_intake_error)
        self.info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_info, in_qos)
        self.floor = FloorGrid(self)  # declares its parameters, publishes ~/floor_grid

        self.add_on_set_parameters_callback(self._check_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self._last_diag = (time.monotonic(), 0, 0)
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics)

        self._stop = threading.Event()
        self.workers = [threading.Thread(target=self._work, args=(seg,), daemon=True,
                                         name=f"seg_ros_worker{k}")
                        for k, seg in enumerate(self.segmenters)]
        for w in self.workers:
            w.start()
        if self.intake is not None:
            self.intake.start()
        self.get_logger().info(
            f"segmenting {self.image_sub.topic_name} ({s.input_transport}) with "
            f"{self.card.name} [{self.engine.describe()}], {self.card.num_classes} classes, "
            f"{s.workers} worker{'s' if s.workers > 1 else ''}")

    # --- executor thread: callbacks only hand over ------------------------------------------

    def _on_image(self, msg: Any) -> None:
        st = self.stats  # one intake thread (or the executor) writes these
        st.received += 1
        st.last_receive = time.monotonic()
        self.mailbox.put(Frame(msg, st.last_receive, st.received))

    def _on_intake_error(self, e: Exception) -> None:
        self.stats.bump("rejected")
        self.stats.last_error = f"could not take an image message: {type(e).__name__}: {e}"
        self.get_logger().error(self.stats.last_error, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg  # kept for the floor grid, which converts it (once per message)

    # --- parameters ---------------------------------------------------------------------------

    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """rclpy's, plus: every refusal (range, type, read-only, our checks, the floor hook's)
        is logged and counted (parameter_refusals, a WARN period in /diagnostics)."""
        result = super().set_parameters_atomically(parameter_list)
        if not result.successful:
            self.param_refusals += 1
            names = ", ".join(p.name for p in parameter_list)
            self.last_param_error = f"{names}: {result.reason}"
            self.get_logger().warning(f"refused parameter {self.last_param_error}",
                                      throttle_duration_sec=1.0)
        return result

    def _check_params(self, changed: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        for p in changed:
            reason = params.check_update(p.name, p.value, self.card.class_names)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_params(self, changed: list[rclpy.parameter.Parameter]) -> None:
        self.live = params.live_from({p.name: p.value for p in changed}, self.live)
        self.get_logger().info(
            "set " + ", ".join(f"{p.name}={p.value!r}" for p in changed))

    # --- worker thread ------------------------------------------------------------------------

    def _work(self, segmenter: Segmenter) -> None:
        while not self._stop.is_set():
            with self._take_lock:  # one worker at a time waits for the next frame
                rate = self.live.max_rate_hz
                if rate > 0 and (wait := self._next_start - time.monotonic()) > 0:
                    self._stop.wait(wait)  # frames arriving meanwhile overwrite each other
                    continue
                frame = self.mailbox.take(timeout=0.1)
                if frame is None:
                    continue
                self._next_start = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
                self.order.begin(frame.seq)  # under the take lock: in flight in arrival order
            try:
                self._process(frame, segmenter)
            except CodecError as e:
                self.stats.bump("rejected")
                self.stats.last_error = str(e)
                self.get_logger().error(
                    f"rejected a frame ({self.stats.rejected} so far, see frames_rejected in "
                    f"/diagnostics): {e}", throttle_duration_sec=5.0)
            except Exception as e:  # keep serving: one bad engine call must not kill the node
                if self._stop.is_set() or not self.context.ok():
                    return
                self.stats.bump("failed")
                self.stats.last_error = f"{type(e).__name__}: {e}"
                self.get_logger().error(
                    f"frame failed ({self.stats.failed} so far): {self.stats.last_error}",
                    throttle_duration_sec=5.0)
            finally:
                self.order.end(frame.seq)

    def _wanted(self) -> dict[str, bool]:
        live = self.live
        on = {"labels": live.publish_labels, "confidence": live.publish_confidence,
              "color_mask": live.publish_color_mask, "overlay": live.publish_overlay}
        return {k: on[k] and self.pubs[k].get_subscription_count() > 0 for k in OUTPUTS}

    def _publish(self, name: str, image: np.ndarray, encoding: str, header: Header,
                 seq: int) -> None:
        """Publish one output in arrival order (see OutputOrder; workers > 1)."""
        msg = convert.to_image_msg(image, encoding, header)
        with self.order.turn(name, seq):
            self.pubs[name].publish(msg)
            self.stats.computed[name] += 1

    def _process(self, frame: Frame, segmenter: Segmenter) -> None:
        msg = frame.msg
        clock = time.perf_counter
        t0 = clock()
        rgb = self._decode(msg)  # CodecError -> rejected
        want = self._wanted()
        floor = self.floor is not None and self.floor.wanted()
        if not (any(want.values()) or floor):
            self.stats.bump("idle")
            return
        stats = self.stats
        st = stats.stage_ms
        t1 = clock()
        floor_conf = floor and self.floor.needs_confidence()
        outputs = self._infer(segmenter, rgb, want["confidence"] or floor_conf)
        header: Header = msg.header
        live = self.live
        size = rgb.shape[:2]
        # Most-needed first: labels and the floor grid (navigation) before the pictures; each
        # post-processed just before it goes out.
        t2 = clock()
        labels = segmenter.labels(outputs, size)
        post = clock() - t2
        if want["labels"]:
            self._publish("labels", labels, self.labels_encoding, header, frame.seq)
        confidence = None
        if want["confidence"] or floor_conf:
            t = clock()
            confidence = segmenter.confidence(outputs, size)
            post += clock() - t
        if floor:
            with self.order.turn("floor_grid", frame.seq):  # one frame at a time in the hook
                self.floor(labels, header, self.camera_info, confidence)
        if want["confidence"] and confidence is not None:
            self._publish("confidence", confidence, "mono8", header, frame.seq)
        t3 = clock()
        publish, render = t3 - t2 - post, 0.0
        mask = None
        if want["color_mask"]:
            mask = self.palette.color_mask(labels)
            t4 = clock()
            self._publish("color_mask", mask, "rgb8", header, frame.seq)
            t5 = clock()
            render += t4 - t3
            publish += t5 - t4
            t3 = t5
        if want["overlay"]:
            if live.class_filter != self._filter_src:  # validated when it was set
                self._filter_src = live.class_filter
                self.palette.set_visible(
                    params.parse_class_filter(live.class_filter, self.card.class_names))
            overlay = self.palette.overlay(rgb, labels, live.overlay_alpha, mask)
            t4 = clock()
            self._publish("overlay", overlay, "rgb8", header, frame.seq)
            t5 = clock()
            render += t4 - t3
            publish += t5 - t4
        t_end = clock()
        st["decode"].append((t1 - t0) * 1e3)
        st["postprocess"].append(post * 1e3)
        st["render"].append(render * 1e3)
        st["publish"].append(publish * 1e3)  # labels + floor grid + confidence + images
        st["worker"].append((t_end - t0) * 1e3)
        stats.lat_receive_ms.append((time.monotonic() - frame.t_receive) * 1e3)
        now_ns = self.get_clock().now().nanoseconds
        stats.lat_stamp_ms.append((now_ns - convert.stamp_ns(header)) / 1e6)
        stats.bump("processed")

    def _infer(self, seg: Segmenter, rgb: np.ndarray, want_confidence: bool
               ) -> dict[str, np.ndarray]:
        """Pre-process and run the engine (timed); post-processing is per output."""
        st, clock = self.stats.stage_ms, time.perf_counter
        t0 = clock()
        batch = seg.preprocess(rgb)
        t1 = clock()
        outputs = seg.infer(batch, want_confidence)
        t2 = clock()
        self.stats.engine_ms.append((t2 - t1) * 1e3)
        st["preprocess"].append((t1 - t0) * 1e3)
        st["engine"].append((t2 - t1) * 1e3)
        return outputs

    # --- label info and diagnostics -----------------------------------------------------------

    def _label_info(self) -> Any:
        from std_msgs.msg import ColorRGBA

        card = self.card
        msg = SegmentationInfo()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.model_name = card.name
        msg.engine = self.engine.describe()
        msg.class_names = list(card.class_names)
        msg.colors = [ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
                      for r, g, b in card.colors]
        trav = set(card.traversable)
        msg.traversable = [i in trav for i in range(card.num_classes)]
        msg.input_height, msg.input_width = (int(v) for v in card.input_size)
        msg.labels_encoding = self.labels_encoding
        return msg

    def diagnostics_status(self) -> DiagnosticStatus:
        """One DiagnosticStatus for the last diagnostics period (rates) and the run (counters)."""
        st = self.stats
        now = time.monotonic()
        t_last, rx_last, px_last = self._last_diag
        dt = max(now - t_last, 1e-6)
        self._last_diag = (now, st.received, st.processed)
        in_rate, out_rate = (st.received - rx_last) / dt, (st.processed - px_last) / dt
        rx_med, rx_p99 = _percentiles(st.lat_receive_ms)
        sx_med, sx_p99 = _percentiles(st.lat_stamp_ms)
        eng_med, eng_p99 = _percentiles(st.engine_ms)
        # Levels judge this period only, so they return to OK once the cause is gone.
        floor_values = self.floor.diagnostics_values() if self.floor is not None else {}
        floor_errors = sum(int(v) for k, v in floor_values.items() if k.startswith("floor_")
                           and k.endswith(("_failures", "_mismatches", "_errors")))
        seen = getattr(self, "_seen", None) or (0, 0, 0, 0)
        self._seen = (st.failed, st.rejected, floor_errors, self.param_refusals)
        failed, rejected, floor_bad, refused = (a - b for a, b in zip(self._seen, seen))
        level, message = DiagnosticStatus.OK, "segmenting"
        if not all(w.is_alive() for w in self.workers):
            level, message = DiagnosticStatus.ERROR, "worker thread stopped: restart the node"
        elif st.received > 0 and st.processed == 0 and st.rejected + st.failed > 0:
            level, message = DiagnosticStatus.ERROR, f"no frame processed: {st.last_error}"
        elif failed > 0 and st.processed == px_last:
            level, message = DiagnosticStatus.ERROR, f"every frame failing: {st.last_error}"
        elif st.received == 0 or now - st.last_receive > STALE_INPUT_S:
            level, message = DiagnosticStatus.WARN, f"no images on {self.image_sub.topic_name}"
        elif failed + rejected > 0:
            level, message = DiagnosticStatus.WARN, f"bad frames: {st.last_error}"
        elif floor_bad > 0:
            level, message = DiagnosticStatus.WARN, (
                "floor grid skipped frames: " + ", ".join(
                    f"{k}={v}" for k, v in floor_values.items() if k.startswith("floor_") and
                    k.endswith(("_failures", "_mismatches", "_errors")) and v != "0"))
        elif refused > 0:
            level, message = DiagnosticStatus.WARN, f"parameter refused: {self.last_param_error}"
        values = {
            "input_rate_hz": f"{in_rate:.2f}",
            "output_rate_hz": f"{out_rate:.2f}",
            "latency_receive_median_ms": f"{rx_med:.2f}",
            "latency_receive_p99_ms": f"{rx_p99:.2f}",
            "latency_stamp_median_ms": f"{sx_med:.2f}",
            "latency_stamp_p99_ms": f"{sx_p99:.2f}",
            "engine_median_ms": f"{eng_med:.2f}",
            "engine_p99_ms": f"{eng_p99:.2f}",
            **{f"stage_{k}_median_ms": f"{_percentiles(q)[0]:.3f}"
               for k, q in st.stage_ms.items()},
            "frames_received": str(st.received),
            "frames_processed": str(st.processed),
            "frames_dropped": str(self.mailbox.dropped),
            "frames_rejected": str(st.rejected),
            "frames_failed": str(st.failed),
            "frames_idle": str(st.idle),
            "workers": str(len(self.workers)),
            "last_error": st.last_error,
            **{f"computed_{k}": str(v) for k, v in st.computed.items()},
            "parameter_refusals": str(self.param_refusals),
            **floor_values,
            "engine": self.engine.describe(),
            "model": self.card.name,
            "model_path": str(self.startup.model_path),
            "input_topic": self.image_sub.topic_name,
        }
        return DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: segmentation",
            message=message, hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self.diagnostics_status()]
        self.diag_pub.publish(msg)

    # --- shutdown -----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop and join the worker (before destroy_node, so it never publishes on a dead node)."""
        self._stop.set()
        if self.intake is not None:
            self.intake.close(timeout)
        self.mailbox.close()
        for w in self.workers:
            if w.is_alive() and w is not threading.current_thread():
                w.join(timeout)


def main(args: list[str] | None = None) -> int:
    """``ros2 run seg_ros segmentation_node`` / ``seg-ros node``: spin until SIGINT/SIGTERM.

    Returns 0 on a clean shutdown, 1 when the node cannot start (one line naming the fix).
    """
    memory.keep_large_buffers()  # before rclpy allocates: image buffers stay in the heap
    rclpy.init(args=args)  # installs SIGINT/SIGTERM handlers that shut the context down
    try:
        node = SegmentationNode()
    except Exception as e:
        rclpy.try_shutdown()
        if not is_user_error(e):
            raise
        print(f"[{NODE_NAME}] error: {e}", file=sys.stderr, flush=True)
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
