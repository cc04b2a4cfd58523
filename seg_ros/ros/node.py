"""SegmentationNode: camera images in; labels, confidence, colour mask, overlay, class mask (raw
and compressed) and a floor grid out, each with the input header.

Threads: an intake thread (seg_ros.ros.intake) takes each camera image off DDS and drops it
into a one-slot :class:`~seg_ros.pipeline.Mailbox` (latest frame wins); the executor thread runs
camera_info, the diagnostics timer, the ~/enable service and the parameter services.
``workers`` worker threads (default one, each with its own engine; seg_ros.ros.workers)
decode -> segment -> publish, and compute only the outputs somebody subscribes to (confidence
is not even asked of the model when nobody needs it). The outputs are plug-ins
(seg_ros.ros.outputs): the worker walks their registry, most-needed first (labels, floor grid,
points, confidence, the pictures, camera_info, the fused map), each a stage of its own whose
failure costs only that output (seg_ros.ros.stages).

The node's work is in :class:`SegmentationCore`, in phases a managed node runs one by one
(seg_ros.ros.lifecycle): build (every parameter group declared, seg_ros.ros.param_groups;
publishers), configure (parameters read, model loaded, engine warmed up), activate
(subscriptions and workers on), deactivate, cleanup.
:class:`SegmentationNode`, the plain node, runs the first three at construction.

Topics (relative names: remap them, e.g. ``-r image:=/camera/image_raw``):
    in:  image (sensor_msgs/Image) or image/compressed (CompressedImage), camera_info
    out: see seg_ros.ros.outputs; ~/label_info (seg_ros/msg/SegmentationInfo) and
         ~/label_info/vision (vision_msgs/LabelInfo, where installed), both transient-local;
         /diagnostics
    srv: ~/enable (std_srvs/SetBool): pause and resume without tearing down
With ``cameras`` (several cameras, one engine, frames batched): c/image, c/camera_info in,
~/c/labels, ... out; see seg_ros.ros.cameras and seg_ros.ros.camera_floor.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from seg_ros.engines import open_engine
from seg_ros.errors import CodecError, ConfigError
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
from seg_ros.ros import convert, intake, outputs, params
from seg_ros.ros.cadence import InputCadence
from seg_ros.ros.cameras import BatchServing, Camera, CameraSet, Job, new_mailboxes
from seg_ros.ros.compat import add_parameter_callbacks
from seg_ros.ros.depth_hook import DepthInput
from seg_ros.ros.health import STALE_INPUT_S, HealthReport
from seg_ros.ros.label_info import LabelInfoPublishers
from seg_ros.ros.node_params import NodeParameters
from seg_ros.ros.outputs.images import output_size, resize_rgb
from seg_ros.ros.param_groups import ParamBoard
from seg_ros.ros.poses import PoseSource
from seg_ros.ros.runner import NODE_NAME, run
from seg_ros.ros.stages import OutputStages
from seg_ros.ros.transport_events import TransportEvents
from seg_ros.ros.workers import WorkerThreads
from seg_ros.segmenter import Segmenter

__all__ = ["NODE_NAME", "OUTPUTS", "STALE_INPUT_S", "SegmentationCore", "SegmentationNode",
           "main", "run"]


class SegmentationCore(NodeParameters, WorkerThreads, HealthReport, BatchServing):
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

        node_group = outputs.node_group()
        node_group.check, node_group.appliers = self._check_params, [self._apply_params]
        node_group.declare(self, self.managed)
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
        self.poses: PoseSource | None = None  # tf for the floor outputs, from configure on
        self.camera_info: CameraInfo | None = None
        self._take_lock = threading.Lock()  # max_rate_hz holds across workers
        self._last_start = 0.0  # monotonic start of the last frame taken (max_rate_hz)
        self._input_since: float | None = None  # images arriving without a gap since then
        self.cadence = InputCadence()  # image stamps per camera: half-blind input (health)
        self.transport_events: list[TransportEvents] = []  # lost samples, QoS the camera lacks
        self.refused_qos: dict[str, str] = {}  # image topic -> QoS policy a publisher mismatched
        self._busy_since: dict[str, float] = {}  # worker -> start of the frame it is on
        self._stop = threading.Event()  # this activation's workers stop (a new one each time)
        self._generation = 0  # activations so far (names later workers apart)
        self._detached: dict[int, threading.Thread] = {}  # slot -> worker left in the engine
        self.workers_detached = 0  # workers a deactivate left inside the engine, since start
        self._active = False
        self.fatal = ""  # why the node must exit (a worker died); main() returns non-zero
        self._build_cameras()
        self.params = ParamBoard([node_group, *outputs.other_groups(
            tuple(self.cameraset.cameras) if self.cameraset is not None else ())])
        for group in self.params.groups[1:]:
            group.declare(self, self.managed)
        self.label_info = LabelInfoPublishers(self)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.enable_srv = self.create_service(SetBool, "~/enable", self._on_enable)
        add_parameter_callbacks(self, self.params.check, self.params.apply)
        self._last_diag = (time.monotonic(), 0, 0)
        self._seen = (0, 0, 0)  # failed, rejected, parameter refusals at the last diagnostics
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.stages = OutputStages(self.get_logger(), self.stats.note_error, self._stopped)
        self.depth = DepthInput(self, self.params["depth"])  # depth/image in (depth_hook)
        self.outputs = tuple(cls(self) for cls in outputs.REGISTRY)  # their publishers
        self._warn_undeclared_overrides()

    def _build_cameras(self) -> None:
        """The single camera (outputs ~/labels, ...), or with ``cameras`` (read-only, so read
        here) each camera (~/c/labels, ...); ``camera_list`` is what the outputs serve."""
        names = params.camera_names(params.value_of(self, "cameras"))
        self.cameraset: CameraSet | None = None
        self._single: Camera | None = None
        if names:
            self.cameraset = CameraSet(names)
            self.camera_list: tuple[Camera, ...] = tuple(self.cameraset.cameras.values())
        else:
            self._single = Camera("", self.order, self.stats)
            self.camera_list = (self._single,)
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
        if not self.context.ok():  # shut down (SIGTERM) while the model loaded: no tf, no subs
            raise ExternalShutdownException("shut down while configuring")
        if self.poses is None:  # tf at the image stamps, for the floor outputs
            self.poses = PoseSource(self, lambda: self.params["floor_grid"].values)
        for out in self.outputs:
            out.configure(self.card)
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
        self.watch_transport(self.image_sub, "")
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
        for cam in cams.cameras.values():
            self.watch_transport(cam.subs[0], cam.name)
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

    def watch_transport(self, subscription: Any, camera: str) -> None:
        """Count ``camera``'s samples the middleware lost (half-blind input) and publishers whose
        QoS cannot match ``subscription`` (no image of theirs arrives)."""
        topic = subscription.topic_name

        def incompatible(policy: str) -> None:
            self.refused_qos[topic] = policy
            self.get_logger().warning(
                f"a publisher on {topic} offers QoS incompatible with this subscription "
                f"({policy}): none of its images will arrive; set qos.reliability / "
                f"qos.durability to what the camera offers (ros2 topic info -v {topic})")

        self.transport_events.append(TransportEvents(
            self, subscription, lambda n: self.cadence.note_lost(camera, n), incompatible))

    def _on_intake_error(self, e: Exception) -> None:
        self.stats.bump("rejected")
        self.stats.note_error(f"could not take an image message: {type(e).__name__}: {e}")
        self.get_logger().error(self.stats.last_error, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg  # kept for the outputs, which convert it (once per message)
        if self._single is not None:
            self._single.camera_info = msg

    def info_topic(self) -> str:
        """The single camera's camera_info topic (for the lines that name it)."""
        sub = self.info_sub
        return sub.topic_name if sub is not None else "camera_info"

    def input_since(self) -> float | None:
        """Since when images have been arriving without a gap (monotonic s; None: none)."""
        return self._input_since

    def _on_enable(self, request: Any, response: Any) -> Any:
        """~/enable: the same as setting the ``enabled`` parameter (so both always agree)."""
        result = self.set_parameters([Parameter("enabled", value=bool(request.data))])[0]
        response.success = result.successful
        response.message = ("resumed" if request.data else "paused") if result.successful \
            else result.reason
        return response

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
        idle) when no output that may run alone wants anything of it."""
        timer, live = StageTimer(), self.live
        with timer("decode"):
            rgb = self._decode(frame.msg, live.max_input_pixels)
        run = self._outputs_for(cam, live)
        if not any(out.alone for out in run):
            self.stats.bump("idle")
            return None
        in_hw = rgb.shape[:2]
        out_hw = output_size(live, in_hw, tuple(self.card.input_size))
        need_conf = any(out.needs_confidence(cam, live) for out in run)
        return Job(frame, cam, timer, live, rgb, run, in_hw, out_hw, need_conf)

    def _outputs_for(self, cam: Camera, live: params.LiveSettings) -> tuple[Any, ...]:
        """The outputs to run for a frame of ``cam``, in registry order: those wanted and those
        they require, each once its inputs are there (``ready``) and what it requires runs."""
        wanted = {out.name for out in self.outputs if out.wanted(cam, live)}
        demanded = wanted | {r for out in self.outputs if out.name in wanted
                             for r in out.requires}
        run: list[Any] = []
        for out in self.outputs:
            if out.name in demanded and all(r in {o.name for o in run} for r in out.requires) \
                    and out.ready(cam, live):
                run.append(out)
        return tuple(run)

    def _publish(self, job: Job, seg: Segmenter, engine_out: dict[str, np.ndarray]) -> None:
        """One frame's outputs from its engine outputs, in registry order; the accounting."""
        timer, header = job.timer, job.frame.msg.header
        with timer("postprocess"):
            labels = seg.labels(engine_out, job.out_hw)
            conf = seg.confidence(engine_out, job.out_hw) if job.need_conf else None
        result = outputs.FrameResult(resize_rgb(job.rgb, job.out_hw), labels, conf, header,
                                     job.frame.seq, job.camera, timer, job.live,
                                     engine_outputs=engine_out, segmenter=seg, in_hw=job.in_hw)
        for out in job.outputs:  # each stage's failure costs only its output
            self.stages.run(out.name, out.publish, result)
        timer.record(self.stats.stage_ms)
        self._account(job.frame, header, job.camera)

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
        for out in self.outputs:
            out.close()
        return joined

    def _warn_oversubscribed(self, threads: int, workers: int) -> None:
        cores = os.cpu_count() or 1
        total = (threads or cores) * workers
        if total > 2 * cores:
            self.get_logger().warning(
                f"threads x workers = {threads or cores} x {workers} = {total} engine threads on "
                f"{cores} CPU cores: oversubscribed, latency will jitter; use threads:=1 with "
                f"workers <= {cores}, or fewer workers")

    stale_input_s = STALE_INPUT_S

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


def main(args: list[str] | None = None) -> int:
    """``ros2 run seg_ros segmentation_node`` / ``seg-ros node``: the plain node."""
    return run(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
