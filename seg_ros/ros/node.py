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
         ~/label_info (seg_ros/msg/SegmentationInfo, transient-local), /diagnostics,
         ~/floor_grid (nav_msgs/OccupancyGrid, see seg_ros.ros.floor_hook)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from seg_ros.engines import open_engine
from seg_ros.errors import CodecError, ConfigError, is_user_error
from seg_ros.pipeline import (
    ERROR,
    OK,
    OUTPUTS,
    WARN,
    Frame,
    Mailbox,
    OutputOrder,
    OutputWatchdog,
    Silence,
    Stats,
    percentiles,
)
from seg_ros.render import Palette
from seg_ros.ros import convert, intake, memory, params
from seg_ros.ros.floor_hook import FloorGrid
from seg_ros.segmenter import Segmenter

NODE_NAME = "segmentation_node"
STALE_INPUT_S = 5.0   # no image for this long -> diagnostics WARN
EXIT_WORKER_DIED = 70  # EX_SOFTWARE: a worker thread died; launch's respawn restarts the node

try:  # the generated interface is optional: a source tree without it built still segments
    from seg_ros.msg import SegmentationInfo
except ImportError:  # pragma: no cover - depends on the install
    SegmentationInfo = None


# ---------------------------------------------------------------------------- floor hook


class FloorHook(Protocol):
    """What the floor-grid module plugs into the node (see ``SegmentationNode.floor``).

    ``wanted()`` is asked once per frame (True when ~/floor_grid has subscribers; then the
    labels are computed even if nobody listens to ~/labels); ``needs_confidence()`` asks the
    model for confidence too; ``__call__`` gets the labels at the input size, the input header,
    the latest CameraInfo and the confidence (or None) and publishes the grid itself. Runs on
    the worker thread. ``diagnostics_values()`` is merged into /diagnostics; ``health()`` is
    the hook's (level, message) for the last period; ``stall_reason()`` says why no grid came
    out lately (the watchdog names it when ~/floor_grid is silent).
    """

    def wanted(self) -> bool: ...

    def needs_confidence(self) -> bool: ...

    def __call__(self, labels: np.ndarray, header: Header, camera_info: CameraInfo | None,
                 confidence: np.ndarray | None) -> None: ...

    def diagnostics_values(self) -> dict[str, str]: ...

    def health(self) -> tuple[int, str]: ...

    def stall_reason(self) -> str: ...

    def subscribed(self) -> bool: ...


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
        self._warn_oversubscribed(s.threads, s.workers)
        # one engine per worker: engine buffers and execution contexts are per caller
        # the engines' own lines (auto's fallback reason, TensorRT builds) go to the ROS log
        log = self.get_logger().warning
        self.segmenters = [Segmenter(open_engine(s.model_path, s.backend, s.device, s.threads,
                                                 log=log))
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
        self._last_start = 0.0  # monotonic start of the last frame taken (max_rate_hz)
        self.watchdog = OutputWatchdog()
        self._input_since: float | None = None  # images arriving without a gap since then
        self._busy_since: dict[str, float] = {}  # worker -> start of the frame it is on
        self.fatal = ""  # why the node must exit (a worker died); main() returns non-zero
        self.camera_info: CameraInfo | None = None
        # Hook for ~/floor_grid (seg_ros.floor): set to a FloorHook; None = no floor grid.
        self.floor: FloorHook | None = None

        out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: self.create_publisher(Image, f"~/{name}", out_qos) for name in OUTPUTS}
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.info_pub = None
        if SegmentationInfo is None:
            self.get_logger().warning(
                "seg_ros.msg (the generated SegmentationInfo interface) is not importable: "
                "~/label_info is disabled (build the package with colcon, or run "
                "scripts/build_msgs.sh in a venv)")
        else:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.info_pub = self.create_publisher(SegmentationInfo, "~/label_info", latched)
            self.info_pub.publish(self._label_info())

        in_qos = params.qos_profile(s.qos_reliability, s.qos_depth, s.qos_durability)
        # images bypass the executor (seg_ros.ros.intake): 1.8 ms less from publish to mailbox
        group = intake.OwnThreadGroup() if intake.available() else None
        if s.input_transport == "compressed":
            self._decode: Callable[[Any, int], np.ndarray] = convert.compressed_to_rgb
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
        self._warn_undeclared_overrides()

        self.add_on_set_parameters_callback(self._check_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self._last_diag = (time.monotonic(), 0, 0)
        self._seen = (0, 0, 0)  # failed, rejected, parameter refusals at the last diagnostics
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
        now = time.monotonic()
        if self._input_since is None or now - st.last_receive > STALE_INPUT_S:
            self._input_since = now  # input (re)starts: silence is measured from here
        st.received += 1
        st.last_receive = now
        self.mailbox.put(Frame(msg, st.last_receive, st.received))

    def _on_intake_error(self, e: Exception) -> None:
        self.stats.bump("rejected")
        self.stats.note_error(f"could not take an image message: {type(e).__name__}: {e}")
        self.get_logger().error(self.stats.last_error, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg  # kept for the floor grid, which converts it (once per message)

    # --- parameters ---------------------------------------------------------------------------

    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """rclpy's, plus: every refusal (range, type, read-only, our checks, the floor hook's)
        is logged and counted (parameter_refusals, a WARN period in /diagnostics)."""
        try:
            result = super().set_parameters_atomically(parameter_list)
        except ParameterNotDeclaredException:
            name = next((p.name for p in parameter_list if p.name not in self._parameters), "?")
            near = params.closest_name(name, self._parameters)
            result = SetParametersResult(successful=False, reason=(
                f"{name} is not a parameter of this node{near}: check the name (ros2 param list)"))
        result.reason = _readable_types(result.reason)
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
        """Worker thread: serve frames until stopped. Any error escaping the per-frame handling
        is fatal: logged, and the process exits non-zero (launch's respawn restarts it)
        instead of living on half-alive without a worker."""
        name = threading.current_thread().name
        try:
            while not self._stop.is_set():
                frame = self._next_frame()
                if frame is not None:
                    self._busy_since[name] = time.monotonic()
                    try:
                        self._serve(frame, segmenter)
                    finally:
                        self._busy_since.pop(name, None)
        except BaseException as e:
            if self._stop.is_set() or not self.context.ok():
                return
            self.fatal = f"worker thread {name} died: {type(e).__name__}: {e}"
            self.get_logger().fatal(f"{self.fatal}: exiting (code {EXIT_WORKER_DIED}) so that "
                                    "the launch file's respawn restarts the node")
            self.context.try_shutdown()  # the executor returns; main() exits non-zero

    def _next_frame(self) -> Frame | None:
        """The newest frame once max_rate_hz allows one; None after at most 0.1 s of waiting
        (the rate is read again on every pass, so a change takes effect at once)."""
        with self._take_lock:  # one worker at a time waits for the next frame
            rate = self.live.max_rate_hz
            wait = self._last_start + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
            if wait > 0:
                self._stop.wait(min(wait, 0.1))  # frames arriving meanwhile overwrite each other
                return None
            frame = self.mailbox.take(timeout=0.1)
            if frame is not None:
                self._last_start = time.monotonic()
                self.order.begin(frame.seq)  # under the take lock: in flight in arrival order
            return frame

    def _serve(self, frame: Frame, segmenter: Segmenter) -> None:
        """One frame: bad input is rejected and counted, engine errors counted; both logged."""
        try:
            self._process(frame, segmenter)
        except CodecError as e:
            self.stats.bump("rejected")
            self.stats.note_error(str(e))
            self.get_logger().error(
                f"rejected a frame ({self.stats.rejected} so far, see frames_rejected in "
                f"/diagnostics): {e}", throttle_duration_sec=5.0)
        except Exception as e:  # keep serving: one bad engine call must not kill the node
            if self._stop.is_set() or not self.context.ok():
                return
            self.stats.bump("failed")
            self.stats.note_error(f"{type(e).__name__}: {e}")
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
        self.watchdog.published(name)

    def _process(self, frame: Frame, segmenter: Segmenter) -> None:
        msg = frame.msg
        clock = time.perf_counter
        t0 = clock()
        rgb = self._decode(msg, self.live.max_input_pixels)  # CodecError -> rejected
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
        stamp = convert.stamp_ns(header)
        if stamp == 0:  # unset by the driver: latency unknown, not a 56-year delay
            stats.bump("unstamped")
        else:
            stats.lat_stamp_ms.append((self.get_clock().now().nanoseconds - stamp) / 1e6)
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
        silent = self._silent_outputs(now)
        level, message = self._level(now, px_last, silent)
        values = {
            "input_rate_hz": f"{(st.received - rx_last) / dt:.2f}",
            "output_rate_hz": f"{(st.processed - px_last) / dt:.2f}",
            **self._latency_values(),
            "frames_received": str(st.received),
            "frames_processed": str(st.processed),
            "frames_dropped": str(self.mailbox.dropped),
            "frames_rejected": str(st.rejected),
            "frames_failed": str(st.failed),
            "frames_idle": str(st.idle),
            "frames_unstamped": str(st.unstamped),
            "stalled_outputs": "; ".join(x.describe() for x in silent),
            "workers": str(len(self.workers)),
            "last_error": st.last_error,
            **{f"computed_{k}": str(v) for k, v in st.computed.items()},
            "parameter_refusals": str(self.param_refusals),
            **(self.floor.diagnostics_values() if self.floor is not None else {}),
            "engine": self.engine.describe(),
            "model": self.card.name,
            "model_path": str(self.startup.model_path),
            "input_topic": self.image_sub.topic_name,
        }
        return DiagnosticStatus(
            level=bytes([level]), name=f"{self.get_fully_qualified_name()}: segmentation",
            message=message, hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _latency_values(self) -> dict[str, str]:
        st = self.stats
        out = {}
        for key, samples in (("latency_receive", st.lat_receive_ms),
                             ("latency_stamp", st.lat_stamp_ms), ("engine", st.engine_ms)):
            med, p99 = percentiles(samples)
            out[f"{key}_median_ms"], out[f"{key}_p99_ms"] = f"{med:.2f}", f"{p99:.2f}"
        out.update({f"stage_{k}_median_ms": f"{percentiles(q)[0]:.3f}"
                    for k, q in st.stage_ms.items()})
        return out

    def _level(self, now: float, px_last: int, silent: list[Silence]) -> tuple[int, str]:
        """The most severe condition of this period (levels judge this period only, so they
        return to OK once the cause is gone); the first listed wins among equals."""
        st = self.stats
        seen = self._seen
        self._seen = (st.failed, st.rejected, self.param_refusals)
        failed, rejected, refused = (a - b for a, b in zip(self._seen, seen))
        found: list[tuple[int, str]] = []
        if self.fatal or not all(w.is_alive() for w in self.workers):
            found.append((ERROR, self.fatal or "worker thread stopped: restart the node"))
        if st.received > 0 and st.processed == 0 and st.rejected + st.failed > 0:
            found.append((ERROR, f"no frame processed: {st.last_error}"))
        if failed > 0 and st.processed == px_last:
            found.append((ERROR, f"every frame failing: {st.last_error}"))
        found += [(x.level, x.describe()) for x in silent]
        if self.floor is not None and (floor := self.floor.health())[0] > 0:
            found.append(floor)
        if st.received == 0 or now - st.last_receive > STALE_INPUT_S:
            found.append((WARN, f"no images on {self.image_sub.topic_name}"))
        if failed + rejected > 0:
            found.append((WARN, f"bad frames: {st.last_error}"))
        if refused > 0:
            found.append((WARN, f"parameter refused: {self.last_param_error}"))
        if not found:
            return OK, "segmenting"
        top = max(level for level, _ in found)
        return top, next(msg for level, msg in found if level == top)

    def _silent_outputs(self, now: float) -> list[Silence]:
        """Outputs somebody subscribes to that have been silent too long while images arrive."""
        expected = [k for k, on in self._wanted().items() if on]
        if self.floor is not None and self.floor.subscribed():
            expected.append("floor_grid")
        arriving = now - self.stats.last_receive <= STALE_INPUT_S
        return self.watchdog.check(expected, self._input_since if arriving else None,
                                   self.live.stall_s, self.live.max_rate_hz, self._why_silent,
                                   now)

    def _why_silent(self, output: str) -> str:
        """The likeliest reason ``output`` has been silent, for the diagnostics message."""
        now, st = time.monotonic(), self.stats
        busy = max((now - t for t in list(self._busy_since.values())), default=0.0)
        if busy > self.live.stall_s:
            return f"a worker has been on one frame for {busy:.1f} s (engine stalled or too slow)"
        if output == "floor_grid" and self.floor is not None and (why := self.floor.stall_reason()):
            return why
        if now - st.last_error_at < 2 * self.live.stall_s + 1.0:
            return f"frames rejected or failing: {st.last_error}"
        return (f"no frame processed in the last {now - self.watchdog.last(output):.1f} s "
                "although images arrive")

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self.diagnostics_status()]
        self.diag_pub.publish(msg)

    # --- shutdown -----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> bool:
        """Stop and join the workers (before destroy_node, so they never publish on a dead
        node) within ``timeout`` s in all; False when one is still busy (inside the engine)."""
        end = time.monotonic() + timeout
        self._stop.set()
        if self.intake is not None:
            self.intake.close(timeout)
        self.mailbox.close()
        if self.floor is not None:
            self.floor.close()
        for w in self.workers:
            if w.is_alive() and w is not threading.current_thread():
                w.join(max(0.0, end - time.monotonic()))
        return not any(w.is_alive() for w in self.workers if w is not threading.current_thread())

    def _warn_oversubscribed(self, threads: int, workers: int) -> None:
        cores = os.cpu_count() or 1
        total = (threads or cores) * workers
        if total > 2 * cores:
            self.get_logger().warning(
                f"threads x workers = {threads or cores} x {workers} = {total} engine threads on "
                f"{cores} CPU cores: oversubscribed, latency will jitter; use threads:=1 with "
                f"workers <= {cores}, or fewer workers")

    def _warn_undeclared_overrides(self) -> None:
        """A parameter in the params file or -p that no part of the node declares is a typo
        (overlay_alfa) that rclpy would ignore without a word: say so, with the closest name."""
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        for name in sorted(set(overrides) - set(self._parameters)):
            if name.startswith(("qos_overrides.", "use_sim_time", "start_type_description")):
                continue
            self.get_logger().warning(
                f"parameter {name!r} is not a parameter of this node and is ignored"
                f"{params.closest_name(name, self._parameters)}: fix the name in the params file "
                "or the -p override (ros2 param list shows the names)")


def _readable_types(reason: str) -> str:
    """rclpy states parameter types as numbers ("expected '4' got '2'"): name them."""
    from rcl_interfaces.msg import ParameterType

    names = {str(v): k.removeprefix("PARAMETER_").lower() for k, v in vars(ParameterType).items()
             if k.startswith("PARAMETER_") and isinstance(v, int)}
    return re.sub(r"'(\d+)'", lambda m: f"'{names.get(m.group(1), m.group(1))}'", reason or "")


def _ros_args_error(e: Exception) -> str:
    """rcl's argument-parsing error cut to one line that names the fix."""
    text = re.sub(r", at /\S+:\d+", "", str(e)).replace("failed to initialize rcl: ", "")
    text = " ".join(text.split())
    return (f"invalid ROS arguments: {text}; write -p name:=value, --params-file FILE (valid "
            "ROS 2 parameter YAML), --log-level debug|info|warn|error|fatal")


def _start_node() -> SegmentationNode | int:
    """The node, or the exit code when it cannot start (one line on stderr, no traceback)."""
    try:
        return SegmentationNode()
    except BaseException as e:  # KeyboardInterrupt too: SIGINT while the model loads
        interrupted = isinstance(e, KeyboardInterrupt | ExternalShutdownException) or (
            not rclpy.ok())
        rclpy.try_shutdown()
        if interrupted:
            print(f"[{NODE_NAME}] interrupted while starting: exiting", file=sys.stderr,
                  flush=True)
            return 0
        if not is_user_error(e):
            raise
        print(f"[{NODE_NAME}] error: {e}", file=sys.stderr, flush=True)
        return 1


def main(args: list[str] | None = None) -> int:
    """``ros2 run seg_ros segmentation_node`` / ``seg-ros node``: spin until SIGINT/SIGTERM.

    Returns 0 on a clean shutdown (also when interrupted while starting), 1 when the node cannot
    start, 2 for malformed ROS arguments (one line each naming the fix), 70 when a worker thread
    died. Shutdown is bounded: a worker still inside the engine after 5 s is not waited for.
    """
    memory.keep_large_buffers()  # before rclpy allocates: image buffers stay in the heap
    try:
        rclpy.init(args=args)  # installs SIGINT/SIGTERM handlers that shut the context down
    except Exception as e:
        print(f"[{NODE_NAME}] error: {_ros_args_error(e)}", file=sys.stderr, flush=True)
        return 2
    node = _start_node()
    if isinstance(node, int):
        return node
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()
    rc = EXIT_WORKER_DIED if node.fatal else 0
    try:
        if not node.close():
            print(f"[{NODE_NAME}] a worker is still inside the engine after 5 s: exiting without "
                  "waiting for it", file=sys.stderr, flush=True)
            os._exit(rc)  # tearing rclpy and the engine down under a running thread can abort
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
