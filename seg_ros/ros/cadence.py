"""Half-blind input detection: the share of a camera's frames that reach the node, from the
middleware's count of samples lost in transport where it gives one, else from the image stamps.

Fast DDS tells a best-effort reader of every sample it missed (a gap in the writer's sequence
numbers: the ``message_lost`` event, Humble and later): received / (received + lost) over the
last :data:`WINDOW_S` seconds is then exact, and known within a second of the first losses,
before the stamps could show a rate. Frames lost before the writer (a driver that drops) or on
a middleware that does not report losses leave only the stamps:

A camera stamps every frame it captures; frames lost in transport (best-effort images above
what the DDS transport carries whole) leave gaps that are whole multiples of its frame period.
The period is that of the frames that arrived back to back (the smallest gaps), trusted when
the recent gaps are whole multiples of it (within :data:`TOLERANCE` of a period); the received
fraction over the last :data:`WINDOW_S` of stamp time is then frames received / frames the
stamps span. ROS-free (plain ints in nanoseconds) so that the estimate is tested without rclpy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import pairwise

WINDOW_S = 5.0         # stamp time over which the received fraction is measured
HISTORY_S = 20.0       # stamp time whose gaps give the camera's period (a new rate: after it)
MIN_EXPECTED = 8       # frames the window must span before a fraction is told
MIN_GAPS = 4           # stamp gaps needed for a period
MAX_DIVISOR = 12       # no two frames back to back: the smallest gap may span this many periods
MIN_MULTIPLES = 3      # ... when the gaps are that many different multiples of the period
TOLERANCE = 0.2        # a gap fits a multiple of the period within this share of a period
FIT_SHARE = 0.9        # share of the gaps that must fit (a late stamp now and then is no loss)
LOW_FRACTION = 0.8     # below this share received: half-blind
RESET_BACK_S = 1.0     # a stamp this far before the previous one: a new stream (bag loop, clock)
RESET_GAP_S = 5.0      # a gap this long: the stream paused or restarted (maybe at another rate)

DDS_CAUSE = ("large frames lost over DDS: give the camera's process "
             "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (Fast DDS 2.13+; on Humble's 2.6 a profile "
             "with a large shared-memory segment in FASTRTPS_DEFAULT_PROFILES_FILE, e.g. "
             "seg_ros/ros/fastdds_localhost.xml), or subscribe compressed images "
             "(input_transport: compressed)")


@dataclass(frozen=True)
class Reception:
    """Frames of one camera received over the last window, against those its stamps span."""

    received: int
    expected: int
    period_s: float | None  # the camera's frame period by its stamps (None: not known yet)
    lost: int = 0  # samples the middleware reported lost in the window (0: judged by stamps)

    @property
    def fraction(self) -> float:
        return min(1.0, self.received / self.expected)

    def describe(self, topic: str) -> str:
        if self.lost:
            how = (f"{self.received} of {self.expected} in the last {WINDOW_S:g} s, "
                   f"{self.lost} lost in transport by the middleware's count")
        else:
            how = (f"{self.received} of {self.expected} in the last {WINDOW_S:g} s of stamps, "
                   f"camera at {1.0 / (self.period_s or 1.0):.1f} Hz by its stamps")
        return (f"half-blind: {self.fraction:.0%} of the camera's frames received on {topic} "
                f"({how}): {DDS_CAUSE}")


def frame_period(gaps: list[int]) -> int | None:
    """The camera's frame period (ns) from positive stamp gaps, or None (too few gaps, or no
    steady rate: no claim is made).

    The period is the median of the gaps near the smallest (frames that arrived back to back)
    when :data:`FIT_SHARE` of all gaps are whole multiples of it. Where so many frames are lost
    that none arrived back to back, it is that gap divided by the smallest k up to
    :data:`MAX_DIVISOR` that all gaps fit, if they span :data:`MIN_MULTIPLES` different
    multiples of it (two would also fit a camera whose gaps merely alternate)."""
    if len(gaps) < MIN_GAPS:
        return None
    ordered = sorted(gaps)
    smallest = ordered[int(len(ordered) * (1 - FIT_SHARE))]  # one early stamp does not count
    near = [g for g in ordered if smallest * (1 - TOLERANCE) <= g <= smallest * (1 + TOLERANCE)]
    base = near[len(near) // 2]
    for k in range(1, MAX_DIVISOR + 1):
        period = base / k
        fitting = [m for g in gaps if abs(g / period - (m := round(g / period))) <= TOLERANCE]
        if len(fitting) >= FIT_SHARE * len(gaps) and (
                k == 1 or len(set(fitting)) >= MIN_MULTIPLES):
            return round(period)
    return None


class InputCadence:
    """Image stamps, arrival times and lost-sample counts per camera (the intake thread and the
    middleware's events note them, diagnostics read them). Times: ``time.monotonic()`` s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamps: dict[str, deque[int]] = {}
        self._arrived: dict[str, deque[float]] = {}
        self._lost: dict[str, deque[tuple[float, int]]] = {}

    def note(self, camera: str, stamp_ns: int, now: float | None = None) -> None:
        """One received image: its arrival and its header stamp (0, unstamped: no rate)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            arrived = self._arrived.setdefault(camera, deque(maxlen=4096))
            arrived.append(now)
            while now - arrived[0] > WINDOW_S:
                arrived.popleft()
            if stamp_ns > 0:
                self._note_stamp(camera, stamp_ns)

    def note_lost(self, camera: str, count: int, now: float | None = None) -> None:
        """``count`` samples of ``camera``'s image topic the middleware reported lost."""
        if count <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            lost = self._lost.setdefault(camera, deque(maxlen=4096))
            lost.append((now, count))
            while now - lost[0][0] > WINDOW_S:
                lost.popleft()

    def _note_stamp(self, camera: str, stamp_ns: int) -> None:
        q = self._stamps.setdefault(camera, deque(maxlen=4096))
        if q and not -RESET_BACK_S * 1e9 <= stamp_ns - q[-1] <= RESET_GAP_S * 1e9:
            q.clear()  # the stream started over, or resumed after a pause
        elif q and stamp_ns <= q[-1]:
            return  # a repeated or reordered stamp tells nothing of the rate
        q.append(stamp_ns)
        while stamp_ns - q[0] > HISTORY_S * 1e9:
            q.popleft()

    def reception(self, camera: str = "", now: float | None = None) -> Reception | None:
        """What reached the node of ``camera``'s frames lately: by the middleware's count when
        it reported losses in the last :data:`WINDOW_S` s, else by the stamps once they show a
        steady rate; None before :data:`MIN_EXPECTED` frames."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = list(self._stamps.get(camera, ()))
            arrived = sum(1 for t in self._arrived.get(camera, ()) if now - t <= WINDOW_S)
            lost = sum(n for t, n in self._lost.get(camera, ()) if now - t <= WINDOW_S)
        period = self._period(stamps)
        if lost:
            expected = arrived + lost
            return (Reception(arrived, expected, period and period / 1e9, lost)
                    if expected >= MIN_EXPECTED else None)
        return self._by_stamps(stamps, period)

    @staticmethod
    def _period(stamps: list[int]) -> int | None:
        """The frame period (ns) of the recent window's stamps, else of the whole history's."""
        if not stamps:
            return None
        recent = [s for s in stamps if stamps[-1] - s <= WINDOW_S * 1e9]
        return (frame_period([b - a for a, b in pairwise(recent)])
                or frame_period([b - a for a, b in pairwise(stamps)]))

    @staticmethod
    def _by_stamps(stamps: list[int], period: int | None) -> Reception | None:
        """The received fraction the stamps of the last window show against ``period``."""
        if not stamps or period is None:
            return None
        recent = [s for s in stamps if stamps[-1] - s <= WINDOW_S * 1e9]
        # each gap counts the frames it spans: stamp jitter within a period adds none
        expected = 1 + sum(max(1, round((b - a) / period)) for a, b in pairwise(recent))
        if expected < MIN_EXPECTED:
            return None
        return Reception(len(recent), expected, period / 1e9)

    def half_blind(self, camera: str = "", now: float | None = None) -> Reception | None:
        """The reception when well below the camera's rate, else None."""
        r = self.reception(camera, now)
        return r if r is not None and r.fraction < LOW_FRACTION else None

    def cameras(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys([*self._arrived, *self._lost]))
