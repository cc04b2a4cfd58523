"""Several cameras, one node, one engine.

With the ``cameras`` parameter set to names (e.g. ``[front, left, rear]``), camera ``c``
subscribes ``c/image`` (or ``c/image/compressed``) and ``c/camera_info`` (relative names:
remap them) and publishes ``~/c/labels``, ``~/c/confidence``, ... (seg_ros.ros.outputs) with
its own header. Each camera has its own one-slot mailbox (seg_ros.pipeline.CameraMailboxes:
latest frame wins per camera, round-robin batches), its own output order and counters. A worker
takes the frames waiting together (up to ``max_batch``, within ``batch_wait_ms``), decodes each,
stacks them into one engine call (Segmenter.infer_batch) and publishes each camera's outputs.
With an engine fixed at batch 1 each frame is inferred and published in turn, the camera served
first rotating from batch to batch, so every camera sees about the same latency.

Each camera is watched on its own (:func:`camera_health`): one camera going dark while the
others' images arrive is WARN naming the camera (the floor grid output watches each camera's
part of the merged ~/floor_grid).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seg_ros.pipeline import CameraMailboxes, Frame, OutputOrder, StageTimer, Stats, percentiles
from seg_ros.ros import intake
from seg_ros.segmenter import Segmenter


@dataclass
class Camera:
    """One camera's output order, counters and latest CameraInfo. The single camera of a node
    without ``cameras`` is one too, named ""."""

    name: str
    order: OutputOrder
    stats: Stats
    camera_info: CameraInfo | None = None
    subs: list[Any] = field(default_factory=list)
    intake: Any = None

    @property
    def prefix(self) -> str:
        """Of its output topics (~/<prefix>labels) and watchdog names: "c/", or ""."""
        return f"{self.name}/" if self.name else ""


@dataclass
class Job:
    """One frame between decoding and publishing: what it is for and what it needs."""

    frame: Frame
    camera: Camera
    timer: StageTimer
    live: Any                  # the LiveSettings snapshot taken with the frame
    rgb: np.ndarray
    outputs: tuple[Any, ...]   # the outputs to run, in registry order (seg_ros.ros.outputs)
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    need_conf: bool


class CameraSet:
    """The cameras of a node with several: their subscriptions, output order and counters."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.cameras = {name: Camera(name, OutputOrder(), Stats()) for name in names}

    def subscribe(self, node: Any, compressed: bool, qos: Any,
                  on_image: Callable[[Camera, Any], None],
                  on_error: Callable[[Exception], None]) -> None:
        """c/image (or c/image/compressed) and c/camera_info of every camera; images are taken
        by an intake thread per camera where rclpy allows it (seg_ros.ros.intake)."""
        for cam in self.cameras.values():
            group = intake.OwnThreadGroup() if intake.available() else None
            take = _bind(on_image, cam)
            image_sub = node.create_subscription(
                CompressedImage if compressed else Image,
                f"{cam.name}/image/compressed" if compressed else f"{cam.name}/image", take, qos,
                callback_group=group)
            info_sub = node.create_subscription(CameraInfo, f"{cam.name}/camera_info",
                                                _bind(_keep_info, cam), qos)
            cam.subs = [image_sub, info_sub]
            cam.intake = None if group is None else intake.Intake(
                image_sub, node.context, take, on_error, name=f"seg_ros_intake_{cam.name}")

    def start(self) -> None:
        for cam in self.cameras.values():
            if cam.intake is not None:
                cam.intake.start()

    def stop_intake(self, timeout: float) -> None:
        for cam in self.cameras.values():
            if cam.intake is not None:
                cam.intake.close(timeout)
            cam.intake = None

    def unsubscribe(self, node: Any) -> None:
        for cam in self.cameras.values():
            for sub in cam.subs:
                node.destroy_subscription(sub)
            cam.subs = []

    def no_input(self, output: str, now: float, since: float, stale_s: float) -> str:
        """Why a camera's output ("c/labels", "c/floor_grid") is silent when it is that
        camera's images that stopped ("" otherwise); ``since``: when the node's input began."""
        cam = self.cameras.get(output.partition("/")[0]) if "/" in output else None
        if cam is None:
            return ""
        gap = now - max(cam.stats.last_receive, since)
        if gap <= stale_s:
            return ""
        topic = cam.subs[0].topic_name if cam.subs else f"{cam.name}/image"
        return f"no images on {topic} for {gap:.1f} s (the other cameras' arrive)"

    def topics(self) -> str:
        subs = [c.subs[0].topic_name for c in self.cameras.values() if c.subs]
        return ", ".join(subs) if subs else "(not subscribed)"

    def diagnostics_values(self, mailboxes: Any) -> dict[str, str]:
        """Per camera: frames received, processed, dropped (overwritten unprocessed), rejected,
        failed, and latency from receipt to publication (median, p99, ms)."""
        out: dict[str, str] = {"cameras": ", ".join(self.cameras)}
        dropped = getattr(mailboxes, "dropped_by", {})
        for name, cam in self.cameras.items():
            st = cam.stats
            med, p99 = percentiles(st.lat_receive_ms)
            out.update({f"{name}.frames_received": str(st.received),
                        f"{name}.frames_processed": str(st.processed),
                        f"{name}.frames_dropped": str(dropped.get(name, 0)),
                        f"{name}.frames_rejected": str(st.rejected),
                        f"{name}.frames_failed": str(st.failed),
                        f"{name}.latency_receive_median_ms": f"{med:.2f}",
                        f"{name}.latency_receive_p99_ms": f"{p99:.2f}"})
        return out


def batch_values(stats: Stats) -> dict[str, str]:
    """Frames served together per batch (one engine call, or in turn for an engine fixed at
    batch 1) over the last batches: how much batching really happens."""
    sizes = list(stats.batch_sizes)
    if not sizes:
        return {"batch_size_mean": "nan", "batch_size_max": "0", "batches_multi": "0"}
    return {"batch_size_mean": f"{sum(sizes) / len(sizes):.2f}",
            "batch_size_max": str(max(sizes)), "batches_multi": str(sum(s > 1 for s in sizes))}


def _bind(fn: Callable[[Camera, Any], None], cam: Camera) -> Callable[[Any], None]:
    return lambda msg: fn(cam, msg)


def _keep_info(cam: Camera, msg: CameraInfo) -> None:
    cam.camera_info = msg


class BatchServing:
    """Mixin of the segmentation node: the worker's batch of frames from several cameras.

    Decoding, planning and publishing are the node's own per-frame steps (``_plan``,
    ``_publish``, ``_guarded``); only the engine call is shared by the batch.
    """

    def _serve_batch(self, frames: list[Frame], seg: Segmenter) -> None:
        """Decode and plan each frame (a bad one is rejected alone), one engine call for all,
        then each camera's outputs; an engine error fails the frames of the batch. An engine
        fixed at batch 1 gains nothing from one call: each frame is then inferred and
        published in turn, in the mailbox's rotating order."""
        cams = self.cameraset.cameras
        try:
            jobs: list[Job] = []
            for frame in frames:
                with self._guarded(cams[frame.camera]):
                    job = self._plan(frame, cams[frame.camera])
                    if job is not None:
                        jobs.append(job)
            if jobs and seg.max_batch == 1:
                self.stats.batch_sizes.append(len(jobs))  # frames served together
                for job in jobs:
                    self._run_batch([job], seg, count=False)
            elif jobs:
                self._run_batch(jobs, seg)
        finally:
            for frame in frames:
                cams[frame.camera].order.end(frame.seq)

    def _run_batch(self, jobs: list[Job], seg: Segmenter, count: bool = True) -> None:
        t0 = time.perf_counter()
        outputs: list[dict[str, np.ndarray]] = []
        with self._guarded(*(j.camera for j in jobs)):
            batch = seg.preprocess_batch([j.rgb for j in jobs])
            t1 = time.perf_counter()
            outputs = seg.infer_batch(batch, any(j.need_conf for j in jobs))
            t2 = time.perf_counter()
            self.stats.engine_ms.append((t2 - t1) * 1e3)
            if count:
                self.stats.batch_sizes.append(len(jobs))
            for job in jobs:  # the batch's shared stages count for each of its frames
                job.timer.totals.update(preprocess=t1 - t0, engine=t2 - t1)
        for job, out in zip(jobs, outputs):
            with self._guarded(job.camera):
                self._publish(job, seg, out)

    # node attributes and steps this mixin uses (declared for type checkers)
    cameraset: Any
    stats: Stats
    mailbox: Any
    _guarded: Any
    _plan: Any
    _publish: Any


def camera_health(cams: CameraSet, now: float, since: float,
                  stale_s: float) -> list[tuple[int, str]]:
    """WARN for each camera whose images stopped while the node's input goes on: staleness
    judged per camera, not over all cameras together. ``since``: when the node's input began
    (monotonic s)."""
    return [(1, f"camera {name}: {why}") for name in cams.cameras
            if (why := cams.no_input(f"{name}/image", now, since, stale_s))]


def new_mailboxes(cameraset: CameraSet) -> CameraMailboxes:
    return CameraMailboxes(tuple(cameraset.cameras))
