"""The node's worker threads, each bound to the activation that started it.

``workers`` threads each serve frames with their own engine (seg_ros.ros.node). A worker holds
its activation's stop event (``stop_event``), so a worker that outlived its activation never
takes another frame, and its output stages are skipped (seg_ros.ros.stages): it never publishes
while the node is inactive. A deactivate waits for each worker (5 s by default). A worker still
inside the engine then is detached: logged, counted as ``workers_detached``, named in
/diagnostics while it is in the engine. Its subscriptions are destroyed all the same. The next
activation's worker of that engine waits until it has left, so one engine never runs two frames
and the threads do not grow over lifecycle cycles.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from seg_ros.pipeline import Frame
from seg_ros.segmenter import Segmenter

EXIT_WORKER_DIED = 70  # EX_SOFTWARE: a worker thread died; launch's respawn restarts the node


class WorkerThreads:
    """Mixin of SegmentationCore: starting, stopping and detaching its worker threads."""

    def _start_workers(self) -> None:
        """One worker per engine, bound to this activation's stop event (``stop_event``)."""
        self._generation += 1
        gen = "" if self._generation == 1 else f"_{self._generation}"
        self.workers = []
        for k, seg in enumerate(self.segmenters):
            w = threading.Thread(target=self._work, args=(seg, k), daemon=True,
                                 name=f"seg_ros_worker{k}{gen}")
            w.stop_event = self._stop  # type: ignore[attr-defined]
            self.workers.append(w)
        for w in self.workers:
            w.start()
        self._active = True

    def _my_stop(self) -> threading.Event:
        """The calling worker's activation's stop event (the current one elsewhere)."""
        return getattr(threading.current_thread(), "stop_event", self._stop)

    def _stopped(self) -> bool:
        """The calling worker's activation has ended (or the node is going down)."""
        return self._my_stop().is_set() or not self.context.ok()

    def _deactivate(self, timeout: float = 5.0) -> bool:
        """No more frames taken, workers joined within ``timeout`` s, subscriptions gone; the
        engines stay loaded. A worker still inside the engine then is detached (logged,
        counted as workers_detached): it publishes nothing more, ends when the engine returns,
        and the next activation's worker of its engine waits for it. False when one was."""
        self._active = False
        end = time.monotonic() + timeout
        self._stop.set()
        if self.intake is not None:
            self.intake.close(timeout)
        if self.cameraset is not None:
            self.cameraset.stop_intake(timeout)
        self.mailbox.close()
        me = threading.current_thread()
        for w in self.workers:
            if w.is_alive() and w is not me:
                w.join(max(0.0, end - time.monotonic()))
        stuck = [(k, w) for k, w in enumerate(self.workers) if w.is_alive() and w is not me]
        for k, w in stuck:
            self._detach(k, w, timeout)
        for events in self.transport_events:  # before their subscriptions
            events.close()
        self.transport_events = []
        for sub in (self.image_sub, self.info_sub):  # the engine holds a frame, not these
            if sub is not None:
                self.destroy_subscription(sub)
        if self.cameraset is not None:
            self.cameraset.unsubscribe(self)
        self.image_sub = self.info_sub = self.intake = None
        return not stuck

    def _detach(self, slot: int, worker: threading.Thread, waited: float) -> None:
        self.workers_detached += 1
        self._detached[slot] = worker
        busy = time.monotonic() - self._busy_since.get(worker.name, time.monotonic())
        self.get_logger().warning(
            f"{worker.name} is still inside the engine after {waited:g} s of waiting (on one "
            f"frame for {busy:.1f} s): detached ({self.workers_detached} so far, "
            "workers_detached); it publishes nothing more and ends when the engine returns, "
            "and the next activation's worker waits for it")

    def detached_text(self) -> str:
        """A detached worker still inside the engine ("" when none), for /diagnostics."""
        now = time.monotonic()
        alive = [w for w in self._detached.values() if w.is_alive()]
        return "; ".join(f"{w.name}, detached by a deactivate, is still inside the engine "
                         f"({now - self._busy_since.get(w.name, now):.1f} s on one frame)"
                         for w in alive)


    def _work(self, segmenter: Segmenter, slot: int) -> None:
        """Worker thread: serve frames until its activation stops. Any error escaping the
        per-frame handling is fatal: logged, and the process exits non-zero (launch's respawn
        restarts it) instead of living on half-alive without a worker."""
        name = threading.current_thread().name
        stop = self._my_stop()
        try:
            if not self._wait_detached(slot, stop):
                return
            while not stop.is_set():
                frames = self._next_frames()
                if frames:
                    self._busy_since[name] = time.monotonic()
                    try:
                        if self.cameraset is None:
                            self._serve(frames[0], segmenter)
                        else:
                            self._serve_batch(frames, segmenter)
                    finally:
                        self._busy_since.pop(name, None)
        except BaseException as e:
            if stop.is_set() or not self.context.ok():
                return
            self.fatal = f"worker thread {name} died: {type(e).__name__}: {e}"
            self.get_logger().fatal(f"{self.fatal}: exiting (code {EXIT_WORKER_DIED}) so that "
                                    "the launch file's respawn restarts the node")
            self.context.try_shutdown()  # the executor returns; main() exits non-zero

    def _wait_detached(self, slot: int, stop: threading.Event) -> bool:
        """Wait (until ``stop``) for the worker a deactivate left inside this slot's engine:
        one engine never runs two frames at once. False when stopped first."""
        old = self._detached.get(slot)
        if old is None:
            return True
        while old.is_alive() and not stop.is_set():
            old.join(0.1)
        if old.is_alive():
            return False
        self._detached.pop(slot, None)
        self.get_logger().info(f"{old.name} (detached) left the engine: "
                               f"{threading.current_thread().name} takes frames")
        return True

    def _next_frames(self) -> list[Frame]:
        """The newest frame (with several cameras: a batch of them) once max_rate_hz allows;
        [] after at most 0.1 s of waiting (the rate is read again on every pass, so a change
        takes effect at once)."""
        with self._take_lock:  # one worker at a time waits for the next frame
            rate = self.live.max_rate_hz
            wait = self._last_start + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
            if wait > 0:
                self._my_stop().wait(min(wait, 0.1))  # frames arriving meanwhile overwrite
                return []
            if self.cameraset is None:
                frame = self.mailbox.take(timeout=0.1)
                frames = [] if frame is None else [frame]
            else:
                frames = self.mailbox.take_batch(self.batch_size, self.live.batch_wait_ms / 1e3,
                                                 timeout=0.1)
            if frames:
                self._last_start = time.monotonic()
            for frame in frames:  # under the take lock: in flight in arrival order
                self._camera(frame).order.begin(frame.seq)
            return frames

    # attributes and methods of the node this mixin uses (declared for type checkers)
    _generation: int
    _detached: dict[int, threading.Thread]
    workers_detached: int
    _stop: threading.Event
    _active: bool
    _take_lock: threading.Lock
    _last_start: float
    _busy_since: dict[str, float]
    segmenters: list[Segmenter]
    workers: list[threading.Thread]
    intake: Any
    cameraset: Any
    mailbox: Any
    image_sub: Any
    info_sub: Any
    transport_events: list[Any]  # seg_ros.ros.transport_events, one per image subscription
    live: Any
    batch_size: int
    fatal: str
    context: Any
    get_logger: Any
    destroy_subscription: Any
    _serve: Any
    _serve_batch: Any
    _camera: Any
