"""SegmentationNode: camera images in; labels, confidence, colour mask, overlay, class mask (raw
and compressed) and a floor grid out, each with the input header.

Threads: an intake thread (seg_ros.ros.intake) takes each camera image off DDS and drops it
into a one-slot :class:`~seg_ros.pipeline.Mailbox` (latest frame wins); the executor thread runs
camera_info, the diagnostics timer, the ~/enable service and the parameter services.
``workers`` worker threads (default one, each with its own engine; seg_ros.ros.workers)
decode -> segment -> publish, and compute only the outputs somebody subscribes to (confidence
is not even asked of the model when nobody needs it). Outputs go out most-needed first: labels,
floor grid, confidence, then the class mask, colour mask and overlay (seg_ros.ros.publishing),
each output a stage of its own whose failure costs only that output (seg_ros.ros.stages).

The node's work is in :class:`SegmentationCore`, in phases a managed node runs one by one
(seg_ros.ros.lifecycle): build (parameters declared, publishers), configure (parameters read,
model loaded, engine warmed up), activate (subscriptions and workers on), deactivate, cleanup.
:class:`SegmentationNode`, the plain node, runs the first three at construction.

Topics (relative names: remap them, e.g. ``-r image:=/camera/image_raw``):
    in:  image (sensor_msgs/Image) or image/compressed (CompressedImage), camera_info
    out: see seg_ros.ros.publishing; ~/label_info (seg_ros/msg/SegmentationInfo) and
         ~/label_info/vision (vision_msgs/LabelInfo, where installed), both transient-local;
         /diagnostics; ~/floor_grid (nav_msgs/OccupancyGrid, seg_ros.ros.floor_hook)
    srv: ~/enable (std_srvs/SetBool): pause and resume without tearing down
With ``cameras`` (several cameras, one engine, frames batched): c/image, c/camera_info in,
~/c/labels, ... out; see seg_ros.ros.cameras and seg_ros.ros.camera_floor.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from seg_ros.engines import open_engine
from seg_ros.errors import CodecError, ConfigError, ParameterTypeError, is_user_error
from seg_ros.pipeline import (
    OUTPUTS,
    Frame,
    Mailbox,
    OutputOrder,
    OutputWatchdog,
    StageTimer,
    Stats,
)
from seg_ros.render import Palette
from seg_ros.ros import convert, intake, memory, param_types, params
from seg_ros.ros.cadence import InputCadence
from seg_ros.ros.camera_floor import CameraFloorGrids
from seg_ros.ros.cameras import BatchServing, Camera, CameraSet, Job, new_mailboxes
from seg_ros.ros.compat import add_parameter_callbacks
from seg_ros.ros.depth_hook import DepthInput
from seg_ros.ros.floor_hook import FloorGrid
from seg_ros.ros.health import STALE_INPUT_S, HealthReport
from seg_ros.ros.label_info import LabelInfoPublishers
from seg_ros.ros.publishing import FrameResult, OutputPublishers, resize_rgb
from seg_ros.ros.stages import OutputStages
from seg_ros.ros.workers import EXIT_WORKER_DIED, WorkerThreads
from seg_ros.segmenter import Segmenter

NODE_NAME = "segmentation_node"
# the picture outputs, each group a stage of its own (the overlay reuses the colour mask)
PICTURE_STAGES = (("confidence", ("confidence",)), ("mask", ("mask",)),
                  ("color_mask", ("color_mask", "color_mask/compressed")),
                  ("overlay", ("overlay", "overlay/compressed")))
__all__ = ["NODE_NAME", "OUTPUTS", "STALE_INPUT_S", "SegmentationCore", "SegmentationNode",
           "main"]


class FloorHook(Protocol):
    """What the floor-grid module plugs into the node (see ``SegmentationCore.floor``).

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

    def close(self) -> None: ...

    def set_card(self, card: Any) -> None: ...


class SegmentationCore(WorkerThreads, HealthReport, BatchServing):
    """The segmentation node's work, for a plain or a managed (lifecycle) rclpy node.

    Raises a :class:`~seg_ros.errors.SegRosError` (one clear line, see :func:`main`) when a
    parameter is invalid or the model cannot be opened.
    """

    param_refusals = 0          # parameter sets refused since start
    last_param_error = ""
    managed = False             # a lifecycle node: start-up parameters are read at configure

    # --- phases ------------------------------------------------------------------------------

    def _build(self) -> None:
        """Parameters declared, publishers, the ~/enable service and the diagnostics timer;
        no model, no subscriptions."""
        from std_srvs.srv import SetBool

        params.declare_only(self)
        self.startup: params.StartupSettings | None = None
        self.live = params.LiveSettings()
        self.stats, self.mailbox, self.order = Stats(), Mailbox(), OutputOrder()
        self.watchdog = OutputWatchdog()
        self.segmenters: list[Segmenter] = []
        self.engine: Any = None
        self.card: Any = None
        self.workers: list[threading.Thread] = []
        self.image_sub: Any = None
        self.info_sub: Any = None
        self.intake: intake.Intake | None = None
        self.floor: FloorHook | None = None
        self.camera_floors: CameraFloorGrids | None = None  # with several cameras
        self.camera_info: CameraInfo | None = None
        self._take_lock = threading.Lock()  # max_rate_hz holds across workers
        self._last_start = 0.0  # monotonic start of the last frame taken (max_rate_hz)
        self._input_since: float | None = None  # images arriving without a gap since then
        self.cadence = InputCadence()  # image stamps per camera: half-blind input (health)
        self._busy_since: dict[str, float] = {}  # worker -> start of the frame it is on
        self._stop = threading.Event()  # this activation's workers stop (a new one each time)
        self._generation = 0  # activations so far (names later workers apart)
        self._detached: dict[int, threading.Thread] = {}  # slot -> worker left in the engine
        self.workers_detached = 0  # workers a deactivate left inside the engine, since start
        self._active = False
        self.fatal = ""  # why the node must exit (a worker died); main() returns non-zero
        self._build_cameras()
        self.label_info = LabelInfoPublishers(self)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.enable_srv = self.create_service(SetBool, "~/enable", self._on_enable)
        add_parameter_callbacks(self, self._check_params, self._apply_params)
        self._last_diag = (time.monotonic(), 0, 0)
        self._seen = (0, 0, 0)  # failed, rejected, parameter refusals at the last diagnostics
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.stages = OutputStages(self.get_logger(), self.stats.note_error, self._stopped)
        self.depth = DepthInput(self)  # depth/image in, ~/points out (seg_ros.ros.depth_hook)

    def _build_cameras(self) -> None:
        """The single camera's outputs (~/labels, ...), or with ``cameras`` (read-only, so read
        here) each camera's (~/c/labels, ...); ``self.outputs`` answers the watchdog's
        ``wanted()`` for all of them."""
        names = params.camera_names(params.value_of(self, "cameras"))
        self.cameraset: CameraSet | None = None
        self._single: Camera | None = None
        if names:
            self.cameraset = CameraSet(self, names, self.stats, self.watchdog.published)
            self.outputs: Any = self.cameraset
        else:
            self.outputs = OutputPublishers(self, self.order, self.stats,
                                            self.watchdog.published)
            self._single = Camera("", self.outputs, self.order, self.stats)
        self._receive_lock = threading.Lock()

    def _configure(self) -> None:
        """Parameters read and checked, the model loaded (one engine per worker) and warmed
        up, label info published; raises SegRosError naming the problem and the fix."""
        try:
            self.startup, self.live = params.read(self)
        except rclpy.exceptions.ParameterException as e:
            raise ConfigError(f"invalid parameter: {e}: fix the value or the params file") from None
        s = self.startup
        self._warn_oversubscribed(s.threads, s.workers)
        log = self.get_logger().warning  # the engines' own lines (auto's fallback reason)
        # one engine per worker: engine buffers and execution contexts are per caller
        self.segmenters = [Segmenter(open_engine(s.model_path, s.backend, s.device, s.threads,
                                                 log=log)) for _ in range(s.workers)]
        self.engine, self.card = self.segmenters[0].engine, self.segmenters[0].card
        for seg in self.segmenters:  # the first frame must not pay for lazy initialisation
            seg(np.zeros((*self.card.input_size, 3), np.uint8))
        self.palette = Palette.from_card(self.card)
        self.labels_encoding = "mono8" if self.card.num_classes <= 255 else "mono16"
        if self.floor is None:
            self.floor = FloorGrid(self)  # declares its parameters, publishes ~/floor_grid
            if self.cameraset is not None:  # ~/c/floor_grid, c.camera_pose, grid.merge
                self.camera_floors = CameraFloorGrids(self, tuple(self.cameraset.cameras),
                                                      self.floor)
            self._warn_undeclared_overrides()
        else:
            self.floor.set_card(self.card)
        self.label_info.publish(self.card, self.engine.describe(), self.labels_encoding,
                                self.live.unknown_below)

    def _activate(self) -> None:
        """Subscriptions on, workers started: frames are taken and outputs published."""
        s = self.startup
        assert s is not None, "activate before configure"
        in_qos = params.qos_profile(s.qos_reliability, s.qos_depth, s.qos_durability)
        # images bypass the executor (seg_ros.ros.intake): 1.8 ms less from publish to mailbox
        group = intake.OwnThreadGroup() if intake.available() else None
        compressed = s.input_transport == "compressed"
        self._decode: Callable[[Any, int], np.ndarray] = (
            convert.compressed_to_rgb if compressed else convert.image_to_rgb)
        self._stop = threading.Event()  # workers a deactivate left in the engine keep theirs
        if self.cameraset is not None:
            self._activate_cameras(compressed, in_qos)
            return
        self.image_sub = self.create_subscription(
            CompressedImage if compressed else Image, "image/compressed" if compressed else
            "image", self._on_image, in_qos, callback_group=group)
        self.intake = None if group is None else intake.Intake(
            self.image_sub, self.context, self._on_image, self._on_intake_error)
        self.info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_info, in_qos)
        self.mailbox = Mailbox()
        self._start_workers()
        if self.intake is not None:
            self.intake.start()
        self.get_logger().info(
            f"segmenting {self.image_sub.topic_name} ({s.input_transport}) with "
            f"{self.card.name} [{self.engine.describe()}], {self.card.num_classes} classes, "
            f"{s.workers} worker{'s' if s.workers > 1 else ''}")

    def _activate_cameras(self, compressed: bool, in_qos: Any) -> None:
        """Each camera's subscriptions, one mailbox per camera, the workers."""
        s, cams = self.startup, self.cameraset
        assert s is not None and cams is not None
        cams.subscribe(self, compressed, in_qos, self._on_camera_image, self._on_intake_error)
        self.mailbox = new_mailboxes(cams)
        self.batch_size = s.max_batch or len(cams.cameras)
        self._start_workers()
        cams.start()
        self.get_logger().info(
            f"segmenting {len(cams.cameras)} cameras ({cams.topics()}, {s.input_transport}) "
            f"with {self.card.name} [{self.engine.describe()}], batches of up to "
            f"{self.batch_size} (engine batch {self.segmenters[0].max_batch or 'dynamic'}), "
            f"{s.workers} worker{'s' if s.workers > 1 else ''}")

    def _cleanup(self) -> None:
        """The engines freed (the model is loaded again at the next configure)."""
        self.segmenters, self.engine, self.startup = [], None, None

    def serving(self) -> bool:
        """Taking frames now: active and not paused by ~/enable."""
        return self._active and self.live.enabled

    def state_text(self) -> str:
        if not self._active:
            return "inactive: not taking images (configure and activate the node)"
        return "segmenting" if self.live.enabled else "paused by ~/enable (or enabled:=false)"

    # --- executor thread: callbacks only hand over ------------------------------------------

    def _on_image(self, msg: Any) -> None:
        frame = self._receive(msg)  # one intake thread (or the executor) calls this
        if frame is not None:
            self.mailbox.put(frame)

    def _on_camera_image(self, cam: Camera, msg: Any) -> None:
        """An image of camera ``cam`` (one intake thread per camera: counted under a lock)."""
        with self._receive_lock:
            frame = self._receive(msg, cam.name)
            if frame is not None:
                cam.stats.received += 1
                cam.stats.last_receive = frame.t_receive
        if frame is not None:
            self.mailbox.put(cam.name, frame)

    def _receive(self, msg: Any, camera: str = "") -> Frame | None:
        """The counted frame of an arriving image; None while paused."""
        st = self.stats
        if not self.live.enabled:
            st.paused += 1  # paused: not taken, not a drop
            return None
        now = time.monotonic()
        if self._input_since is None or now - st.last_receive > STALE_INPUT_S:
            self._input_since = now  # input (re)starts: silence is measured from here
        st.received += 1
        st.last_receive = now
        self.cadence.note(camera, convert.stamp_ns(msg.header))
        return Frame(msg, st.last_receive, st.received, camera)

    def _on_intake_error(self, e: Exception) -> None:
        self.stats.bump("rejected")
        self.stats.note_error(f"could not take an image message: {type(e).__name__}: {e}")
        self.get_logger().error(self.stats.last_error, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg  # kept for the floor grid, which converts it (once per message)

    def _on_enable(self, request: Any, response: Any) -> Any:
        """~/enable: the same as setting the ``enabled`` parameter (so both always agree)."""
        result = self.set_parameters([Parameter("enabled", value=bool(request.data))])[0]
        response.success = result.successful
        response.message = ("resumed" if request.data else "paused") if result.successful \
            else result.reason
        return response

    # --- parameters ---------------------------------------------------------------------------

    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None,
                          ignore_override: bool = False) -> Any:
        """rclpy's, plus: an integer override of a double parameter is taken as that double
        (``-p max_rate_hz:=5``, ``overlay_alpha: 1``); any other type mismatch raises
        ParameterTypeError (one line; the node exits 2)."""
        if not ignore_override:
            param_types.fit_override(self, name, value)
        return super().declare_parameter(  # type: ignore[misc]
            name, value, descriptor, ignore_override)

    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """rclpy's (what ``ros2 param set`` and the SetParameters services call), plus: an
        integer for a double parameter is that double; every refusal (range, type,
        read-only, undeclared, our checks, the floor hook's) is logged and counted
        (parameter_refusals, a WARN period)."""
        try:
            parameter_list = param_types.integers_as_doubles(self, parameter_list)
            result = super().set_parameters_atomically(parameter_list)  # type: ignore[misc]
        except ParameterNotDeclaredException:
            name = next((p.name for p in parameter_list if p.name not in self._parameters), "?")
            near = params.closest_name(name, self._parameters)
            result = SetParametersResult(successful=False, reason=(
                f"{name} is not a parameter of this node{near}: check the name (ros2 param list)"))
        if result.reason.startswith("Trying to set a read-only parameter"):
            result.reason = params.restart_reason(result.reason.split(": ", 1)[-1].rstrip("."))
        result.reason = _readable_types(result.reason)
        if not result.successful:
            self.param_refusals += 1
            names = ", ".join(p.name for p in parameter_list)
            self.last_param_error = f"{names}: {result.reason}"
            self.get_logger().warning(f"refused parameter {self.last_param_error}",
                                      throttle_duration_sec=1.0)
        return result

    def _check_params(self, changed: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        names = self.card.class_names if self.card is not None else ()
        configured = self.startup is not None  # before configure every value may change
        for p in changed:
            reason = (params.check_update(p.name, p.value, names) if configured
                      else params.check_value(p.name, p.value))
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_params(self, changed: list[rclpy.parameter.Parameter]) -> None:
        mine = [p for p in changed if p.name in params.SPEC_BY_NAME]  # hooks log their own
        if not mine:
            return
        self.live = params.live_from({p.name: p.value for p in mine}, self.live)
        self.get_logger().info("set " + ", ".join(f"{p.name}={p.value!r}" for p in mine))
        if self.card is not None and any(p.name == "unknown_below" for p in changed):
            self.label_info.publish(self.card, self.engine.describe(), self.labels_encoding,
                                    self.live.unknown_below)  # the threshold is in LabelInfo

    # --- worker thread ------------------------------------------------------------------------

    def _camera(self, frame: Frame) -> Camera:
        if self.cameraset is not None:
            return self.cameraset.cameras[frame.camera]
        assert self._single is not None
        return self._single

    def _serve(self, frame: Frame, segmenter: Segmenter) -> None:
        """One frame: bad input is rejected and counted, engine errors counted; both logged."""
        try:
            with self._guarded(self._camera(frame)):
                self._process(frame, segmenter)
        finally:
            self.order.end(frame.seq)

    @contextlib.contextmanager
    def _guarded(self, *cams: Camera) -> Iterator[None]:
        """Count and log what goes wrong inside, for the frames of ``cams`` (one each), and
        carry on: bad input is rejected, any other error fails the frames."""
        try:
            yield
        except CodecError as e:
            self._count("rejected", cams, str(e))
            self.get_logger().error(
                f"rejected a frame ({self.stats.rejected} so far, see frames_rejected in "
                f"/diagnostics): {e}", throttle_duration_sec=5.0)
        except Exception as e:  # keep serving: one bad engine call must not kill the node
            if self._stopped():
                return
            self._count("failed", cams, f"{type(e).__name__}: {e}")
            self.get_logger().error(
                f"frame failed ({self.stats.failed} so far): {self.stats.last_error}",
                throttle_duration_sec=5.0)

    def _count(self, counter: str, cams: tuple[Camera, ...], error: str) -> None:
        self.stats.bump(counter, len(cams))
        self.stats.note_error(error)
        for cam in cams:
            if cam.stats is not self.stats:
                cam.stats.bump(counter)

    def _process(self, frame: Frame, seg: Segmenter) -> None:
        """Decode, segment, publish what is wanted, most-needed first; then the accounting."""
        job = self._plan(frame, self._camera(frame))
        if job is not None:
            self._publish(job, seg, self._infer(seg, job.rgb, job.need_conf, job.timer))

    def _plan(self, frame: Frame, cam: Camera) -> Job | None:
        """Decode (CodecError -> rejected) and decide what the frame is for; None (counted
        idle) when nobody wants anything of it. The depth cloud is the single camera's."""
        timer, live = StageTimer(), self.live
        with timer("decode"):
            rgb = self._decode(frame.msg, live.max_input_pixels)
        want = cam.outputs.wanted(live)
        floor = self._floor_wanted(cam)
        points = cam is self._single and self.depth.wanted()
        if not (any(want.values()) or floor or points):
            self.stats.bump("idle")
            return None
        in_hw = rgb.shape[:2]
        out_hw = cam.outputs.output_size(live, in_hw, tuple(self.card.input_size))
        floor_conf = (floor and self.floor is not None and self.floor.needs_confidence()) or points
        need_conf = (want["confidence"] or floor_conf
                     or (live.unknown_below > 0 and (want["labels"] or want["labels/compressed"])))
        return Job(frame, cam, timer, live, rgb, want, floor, points, in_hw, out_hw, need_conf)

    def _publish(self, job: Job, seg: Segmenter, outputs: dict[str, np.ndarray]) -> None:
        """One frame's outputs from its engine outputs, most-needed first; the accounting."""
        timer, live, cam, header = job.timer, job.live, job.camera, job.frame.msg.header
        with timer("postprocess"):
            labels = seg.labels(outputs, job.out_hw)
            conf = seg.confidence(outputs, job.out_hw) if job.need_conf else None
        result = FrameResult(resize_rgb(job.rgb, job.out_hw), labels, conf, header,
                             job.frame.seq)
        run, out = self.stages.run, cam.outputs  # each stage's failure costs only its output
        run("labels", out.publish_labels, job.want, result, self.labels_encoding, live, timer)
        if job.floor:
            run("floor_grid", self._floor_grid, seg, outputs, labels, conf, job, result)
        if job.points:
            run("points", self._points, labels, conf, result, timer)
        for name, group in PICTURE_STAGES:
            if any(job.want[k] for k in group):
                want = {k: v and k in group for k, v in job.want.items()}
                run(name, out.publish_pictures, want, result, self.card, self.palette, live,
                    timer)
        info = self.camera_info if cam is self._single else cam.camera_info
        run("camera_info", out.publish_camera_info, info, job.out_hw, header)
        timer.record(self.stats.stage_ms)
        self._account(job.frame, header, cam)

    def _points(self, labels: np.ndarray, conf: np.ndarray | None, result: FrameResult,
                timer: StageTimer) -> None:
        with timer("publish"), self.order.turn("points", result.seq):
            self.depth(labels, result.header, conf, result.rgb)

    def _floor_wanted(self, cam: Camera) -> bool:
        if cam is self._single:
            return self.floor is not None and self.floor.wanted()
        return self.camera_floors is not None and self.camera_floors.wanted(cam.name,
                                                                             cam.camera_info)

    def _floor_grid(self, seg: Segmenter, outputs: dict[str, np.ndarray], labels: np.ndarray,
                    conf: np.ndarray | None, job: Job, result: FrameResult) -> None:
        """The floor grid needs the labels at the camera's size (its camera_info's)."""
        timer, cam = job.timer, job.camera
        if job.out_hw != job.in_hw:
            with timer("postprocess"):
                labels = seg.labels(outputs, job.in_hw)
                conf = seg.confidence(outputs, job.in_hw) if conf is not None else None
        with timer("publish"), cam.order.turn("floor_grid", result.seq):
            if cam is self._single and self.floor is not None:
                self.floor(labels, result.header, self.camera_info, conf)
            elif self.camera_floors is not None:
                self.camera_floors(cam.name, labels, result.header, cam.camera_info, conf)

    def _infer(self, seg: Segmenter, rgb: np.ndarray, want_confidence: bool,
               timer: StageTimer) -> dict[str, np.ndarray]:
        with timer("preprocess"):
            batch = seg.preprocess(rgb)
        t0 = time.perf_counter()
        with timer("engine"):
            outputs = seg.infer(batch, want_confidence)
        self.stats.engine_ms.append((time.perf_counter() - t0) * 1e3)
        return outputs

    def _account(self, frame: Frame, header: Header, cam: Camera) -> None:
        stats = self.stats
        latency_ms = (time.monotonic() - frame.t_receive) * 1e3
        stats.lat_receive_ms.append(latency_ms)
        stamp = convert.stamp_ns(header)
        if stamp == 0:  # unset by the driver: latency unknown, not a 56-year delay
            stats.bump("unstamped")
        else:
            stats.lat_stamp_ms.append((self.get_clock().now().nanoseconds - stamp) / 1e6)
        stats.bump("processed")
        if cam.stats is not stats:  # one camera of several: its own counters too
            cam.stats.lat_receive_ms.append(latency_ms)
            cam.stats.bump("processed")

    # --- start-up checks and shutdown ---------------------------------------------------------

    def close(self, timeout: float = 5.0) -> bool:
        """Stop and join the workers (before destroy_node, so they never publish on a dead
        node) within ``timeout`` s in all; False when one is still busy (inside the engine)."""
        joined = self._deactivate(timeout)
        if self.floor is not None:
            self.floor.close()
        if self.camera_floors is not None:
            self.camera_floors.close()
        return joined

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

    # rclpy.node.Node API the core uses (a plain or a lifecycle node provides it)
    context: Any
    _parameters: dict[str, Any]
    create_publisher: Any
    create_subscription: Any
    create_service: Any
    create_timer: Any
    destroy_subscription: Any
    get_logger: Any
    get_clock: Any
    set_parameters: Any
    add_on_set_parameters_callback: Any
    add_post_set_parameters_callback: Any


class SegmentationNode(SegmentationCore, Node):
    """The plain (unmanaged) node: built, configured and activated at construction."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        Node.__init__(self, node_name, **kwargs)
        self._build()
        self._configure()
        self._activate()


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


def start(make: Callable[[], Any], name: str = NODE_NAME) -> Any:
    """The node ``make()`` returns, or the exit code when it cannot start (one line on
    stderr, no traceback)."""
    try:
        return make()
    except BaseException as e:  # KeyboardInterrupt too: SIGINT while the model loads
        interrupted = isinstance(e, KeyboardInterrupt | ExternalShutdownException) or (
            not rclpy.ok())
        rclpy.try_shutdown()
        if interrupted:
            print(f"[{name}] interrupted while starting: exiting", file=sys.stderr, flush=True)
            return 0
        if not is_user_error(e):
            raise
        print(f"[{name}] error: {e}", file=sys.stderr, flush=True)
        return 2 if isinstance(e, ParameterTypeError) else 1


def run(make: Callable[[], Any], args: list[str] | None, name: str = NODE_NAME) -> int:
    """rclpy.init, start the node, spin until SIGINT/SIGTERM, shut down within bounds.

    Returns 0 on a clean shutdown (also when interrupted while starting), 1 when the node cannot
    start, 2 for malformed ROS arguments or a parameter of the wrong type (one line each naming
    the fix), 70 when a worker thread
    died. A worker still inside the engine after 5 s is not waited for.
    """
    memory.keep_large_buffers()  # before rclpy allocates: image buffers stay in the heap
    try:
        rclpy.init(args=args)  # installs SIGINT/SIGTERM handlers that shut the context down
    except Exception as e:
        print(f"[{name}] error: {_ros_args_error(e)}", file=sys.stderr, flush=True)
        return 2
    node = start(make, name)
    if isinstance(node, int):
        return node
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()
    rc = EXIT_WORKER_DIED if node.fatal else 0
    try:
        if not node.close():
            print(f"[{name}] a worker is still inside the engine after 5 s: exiting without "
                  "waiting for it", file=sys.stderr, flush=True)
            os._exit(rc)  # tearing rclpy and the engine down under a running thread can abort
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        sys.stderr.flush()
        os._exit(rc)
    return rc


def main(args: list[str] | None = None) -> int:
    """``ros2 run seg_ros segmentation_node`` / ``seg-ros node``: the plain node."""
    return run(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
