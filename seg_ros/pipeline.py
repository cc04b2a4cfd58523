"""ROS-free machinery of the segmentation node: the one-slot mailbox, output ordering across
workers, counters, and the output watchdog that makes a blind node impossible to miss.

Nothing here imports rclpy, so each piece is unit tested without a ROS graph.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NODE_NAME = "segmentation_node"  # the node's default name: its topics are /NODE_NAME/<output>
OUTPUTS = ("labels", "confidence", "color_mask", "overlay")
LATENCY_WINDOW = 300  # frames kept for the latency percentiles in /diagnostics
STAGES = ("decode", "preprocess", "engine", "postprocess", "render", "publish", "worker")
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


# ------------------------------------------------------------------------------- mailbox


@dataclass
class Frame:
    """A received message, when it arrived (time.monotonic(), seconds) and its arrival number."""

    msg: Any
    t_receive: float
    seq: int = 0
    camera: str = ""  # the camera's name with several cameras ("" for the single camera)


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


class CameraMailboxes:
    """One one-slot mailbox per camera, emptied together into a batch for one engine call.

    :meth:`put` never blocks and overwrites that camera's unprocessed frame (a drop counted per
    camera), so a camera flooding at 4x only ever holds one slot and cannot push the others
    out. :meth:`take_batch` takes up to ``max_batch`` waiting frames, the first camera moving on
    by one each batch (round robin), so with fewer slots in a batch than cameras none is
    starved, and frames served one after another (an engine fixed at batch 1) take turns at
    being first.

    Cameras triggered together (the same phase) arrive a fraction of a millisecond apart; an
    idle worker would take the first alone every time, and that camera would always be served
    first. So a batch also waits up to ``COALESCE_S`` for cameras whose next frame is due now
    (from each camera's own period); a camera that stopped, or runs at another phase, is not
    waited for.
    """

    COALESCE_S = 0.006  # how far a due frame is waited for (its arrival jitter)

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"camera names must be distinct and at least one: {list(cameras)}")
        self.cameras = tuple(cameras)
        self._cond = threading.Condition()
        self._slots: dict[str, Frame | None] = dict.fromkeys(self.cameras)
        self._start = 0  # index of the camera served first in the next batch
        self._closed = False
        self.dropped_by: dict[str, int] = dict.fromkeys(self.cameras, 0)
        self._last_put: dict[str, float] = dict.fromkeys(self.cameras, 0.0)
        self._period: dict[str, float] = dict.fromkeys(self.cameras, 0.0)  # s, smoothed

    @property
    def dropped(self) -> int:
        """Frames overwritten before they were taken, all cameras together."""
        return sum(self.dropped_by.values())

    def put(self, camera: str, item: Frame) -> bool:
        """Store ``item`` in ``camera``'s slot; True when it replaced an untaken frame."""
        with self._cond:
            replaced = self._slots[camera] is not None
            if replaced:
                self.dropped_by[camera] += 1
            self._slots[camera] = item
            now = time.monotonic()
            dt, self._last_put[camera] = now - self._last_put[camera], now
            if 0 < dt < 1.0:  # a gap is not a period
                old = self._period[camera]
                self._period[camera] = dt if old == 0 else 0.8 * old + 0.2 * dt
            self._cond.notify()
        return replaced

    def take_batch(self, max_batch: int, wait_s: float = 0.0,
                   timeout: float | None = None) -> list[Frame]:
        """Up to ``max_batch`` frames, one per camera, in round-robin order; [] on timeout or
        once closed. Once a frame waits, up to ``wait_s`` seconds more are given for other
        cameras to fill the batch (0: take what is there, never wait for a slow camera)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._waiting() > 0, timeout):
                return []
            t0 = time.monotonic()
            end, due_end = t0 + wait_s, t0 + self.COALESCE_S
            while not self._closed and self._waiting() < min(max_batch, len(self.cameras)):
                now = time.monotonic()
                left = max(end, due_end if self._due(now) else now) - now
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                return []
            return self._take(max_batch)

    def close(self) -> None:
        """Wake and release a waiting :meth:`take_batch` for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _waiting(self) -> int:
        return sum(f is not None for f in self._slots.values())

    def _due(self, now: float) -> bool:
        """A camera with no frame waiting whose next frame is due within COALESCE_S of now."""
        return any(self._slots[c] is None and self._period[c] > 0
                   and abs(self._last_put[c] + self._period[c] - now) <= self.COALESCE_S
                   for c in self.cameras)

    def _take(self, max_batch: int) -> list[Frame]:
        n, taken, first = len(self.cameras), [], -1
        for k in range(n):
            i = (self._start + k) % n
            frame = self._slots[self.cameras[i]]
            if frame is None:
                continue
            self._slots[self.cameras[i]] = None
            taken.append(frame)
            first = i if first < 0 else first
            if len(taken) == max_batch:
                break
        if first >= 0:  # the camera after the one served first leads the next batch
            self._start = (first + 1) % n
        return taken


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


# ------------------------------------------------------------------------------ counters


@dataclass
class Stats:
    """Counters since start; the worker writes, the diagnostics timer reads (GIL-atomic)."""

    received: int = 0
    processed: int = 0          # frames segmented and published
    rejected: int = 0           # bad input (decode failed)
    failed: int = 0             # engine / publish errors
    idle: int = 0               # frames skipped because no output had a subscriber
    unstamped: int = 0          # frames with a zero header stamp: latency unknown, not counted
    paused: int = 0             # images not taken while paused by ~/enable (not drops)
    last_error: str = ""
    last_error_at: float = 0.0  # monotonic time of the last rejected or failed frame
    last_receive: float = 0.0   # monotonic
    computed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, 0))
    lat_receive_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    lat_stamp_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    engine_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    batch_sizes: collections.deque = field(  # frames per engine batch (several cameras)
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    lock: threading.Lock = field(default_factory=threading.Lock)  # counters, with workers > 1
    # per-stage worker times (ms) of processed frames: decode, preprocess, engine, postprocess,
    # render (colour mask + overlay), publish (to_image_msg + publish), worker (take -> done)
    stage_ms: dict[str, collections.deque] = field(default_factory=lambda: {
        k: collections.deque(maxlen=LATENCY_WINDOW) for k in STAGES})

    def note_error(self, text: str) -> None:
        """Remember the last error and when it happened (diagnostics name it)."""
        self.last_error, self.last_error_at = text, time.monotonic()

    def bump(self, name: str, n: int = 1) -> None:
        """Add to a counter (workers write concurrently: += alone could lose counts)."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


def percentiles(samples: collections.deque) -> tuple[float, float]:
    if not samples:
        return float("nan"), float("nan")
    a = np.fromiter(list(samples), np.float64)
    return float(np.median(a)), float(np.percentile(a, 99))




# ---------------------------------------------------------------------------- stage timer


class StageTimer:
    """Wall time of one frame per stage (``with timer("render"): ...``; a stage may be entered
    several times and adds up), recorded into ``Stats.stage_ms`` when the frame is done."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - t0

    def record(self, stage_ms: dict[str, collections.deque]) -> None:
        """Append this frame's stages (ms) and the whole frame as ``worker``."""
        self.totals["worker"] = time.perf_counter() - self.start
        for stage, seconds in self.totals.items():
            if stage in stage_ms:
                stage_ms[stage].append(seconds * 1e3)


# ------------------------------------------------------------------------------ watchdog


@dataclass(frozen=True)
class Silence:
    """An expected output that has said nothing for too long while input arrives."""

    output: str
    seconds: float
    level: int      # WARN or ERROR
    reason: str

    def describe(self) -> str:
        return f"{self.output} silent for {self.seconds:.1f} s: {self.reason}"


class OutputWatchdog:
    """Which expected outputs are silent while images arrive (monotonic seconds throughout).

    An output is *expected* while somebody subscribes to it and it is enabled. Its silence is
    measured from the latest of: its last publication, the moment it became expected, and the
    moment input resumed after a gap, so a new subscriber or a camera coming back is not
    reported at once. Silence beyond ``limit`` is WARN, beyond twice ``limit`` ERROR, where
    ``limit`` is ``stall_s`` or, when a rate limit spaces frames further apart, 1.5 periods.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._expected_since: dict[str, float] = {}

    def published(self, output: str, now: float | None = None) -> None:
        """Record a publication of ``output`` (any thread; one dict store)."""
        self._last[output] = time.monotonic() if now is None else now

    def last(self, output: str) -> float:
        return self._last.get(output, 0.0)

    def expected_since(self, output: str) -> float:
        """Since when ``output`` has been expected without a break (0.0: it is not)."""
        return self._expected_since.get(output, 0.0)

    def check(self, expected: Iterable[str], input_since: float | None, stall_s: float,
              max_rate_hz: float, reason: Any, now: float | None = None) -> list[Silence]:
        """Silent outputs, most silent first. ``input_since``: since when images have been
        arriving without a gap (None: no input now, so nothing can be silent).
        ``reason(output) -> str`` explains a silence (called only for silent outputs)."""
        now = time.monotonic() if now is None else now
        wanted = set(expected)
        for name in list(self._expected_since):
            if name not in wanted:
                del self._expected_since[name]
        for name in wanted:
            self._expected_since.setdefault(name, now)
        if input_since is None:
            return []
        limit = max(stall_s, 1.5 / max_rate_hz if max_rate_hz > 0 else 0.0)
        out = []
        for name in sorted(wanted):
            quiet = now - max(self._last.get(name, 0.0), self._expected_since[name], input_since)
            if quiet > limit:
                out.append(Silence(name, quiet, ERROR if quiet > 2 * limit else WARN,
                                   reason(name)))
        return sorted(out, key=lambda s: -s.seconds)
