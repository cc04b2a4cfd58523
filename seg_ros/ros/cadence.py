"""Half-blind input detection: the camera's frame rate learnt from its image stamps, and the
share of its frames that reach the node.

A camera stamps every frame it captures; frames lost in transport (best-effort images above
what the DDS transport carries whole) leave gaps that are whole multiples of its frame period.
The period is that of the frames that arrived back to back (the smallest gaps), trusted when
the recent gaps are whole multiples of it (within :data:`TOLERANCE` of a period); the received
fraction over the last :data:`WINDOW_S` of stamp time is then frames received / frames the
stamps span. ROS-free (plain ints in nanoseconds) so that the estimate is tested without rclpy.
"""

from __future__ import annotations

import threading
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
    period_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.received / self.expected)

    def describe(self, topic: str) -> str:
        return (f"half-blind: {self.fraction:.0%} of the camera's frames received on {topic} "
                f"({self.received} of {self.expected} in the last {WINDOW_S:g} s of stamps, "
                f"camera at {1.0 / self.period_s:.1f} Hz by its stamps): {DDS_CAUSE}")


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
    """Image stamps per camera (the intake thread notes them, diagnostics read them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamps: dict[str, deque[int]] = {}

    def note(self, camera: str, stamp_ns: int) -> None:
        """One received image's header stamp (0, unstamped: ignored)."""
        if stamp_ns <= 0:
            return
        with self._lock:
            q = self._stamps.setdefault(camera, deque(maxlen=4096))
            if q and not -RESET_BACK_S * 1e9 <= stamp_ns - q[-1] <= RESET_GAP_S * 1e9:
                q.clear()  # the stream started over, or resumed after a pause
            elif q and stamp_ns <= q[-1]:
                return  # a repeated or reordered stamp tells nothing of the rate
            q.append(stamp_ns)
            while stamp_ns - q[0] > HISTORY_S * 1e9:
                q.popleft()

    def reception(self, camera: str = "") -> Reception | None:
        """What reached the node of ``camera``'s frames lately; None until the stamps show a
        steady rate over at least :data:`MIN_EXPECTED` frames."""
        with self._lock:
            stamps = list(self._stamps.get(camera, ()))
        if not stamps:
            return None
        recent = [s for s in stamps if stamps[-1] - s <= WINDOW_S * 1e9]
        # the recent window's own rate first (a camera that changed its rate), else the history's
        period = (frame_period([b - a for a, b in pairwise(recent)])
                  or frame_period([b - a for a, b in pairwise(stamps)]))
        if period is None:
            return None
        # each gap counts the frames it spans: stamp jitter within a period adds none
        expected = 1 + sum(max(1, round((b - a) / period)) for a, b in pairwise(recent))
        if expected < MIN_EXPECTED:
            return None
        return Reception(len(recent), expected, period / 1e9)

    def half_blind(self, camera: str = "") -> Reception | None:
        """The reception when well below the camera's rate, else None."""
        r = self.reception(camera)
        return r if r is not None and r.fraction < LOW_FRACTION else None

    def cameras(self) -> list[str]:
        with self._lock:
            return list(self._stamps)
