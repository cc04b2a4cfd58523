"""Pairing depth images with colour frames by header stamp, ROS-free.

Drivers of registered RGB-D cameras stamp both images of a pair alike (RealSense, ZED, OAK-D)
or within a frame period of each other; a colour frame takes the depth image with the same
stamp, else the nearest one within ``max_skew_ns``. The colour frame is matched after
inference, so the depth images of the last ``span_ns`` of stamp time are kept (the caller sets
it from the skew and the node's latency): a span, not a count, so a 150 Hz depth stream keeps
as much time as a 15 Hz one. ``max_items`` bounds the memory whatever the rate.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class StampBuffer(Generic[T]):
    """Items of the last ``span_ns`` of stamp time (at most ``max_items``); put() on one
    thread, nearest() on another. A stamp more than ``span_ns`` older than the newest
    (a bag looping, a simulator reset) starts the buffer afresh."""

    def __init__(self, span_ns: int = 1_000_000_000, max_items: int = 256) -> None:
        self._items: deque[tuple[int, T]] = deque(maxlen=max_items)
        self._lock = threading.Lock()
        self.span_ns = span_ns  # read on every put: the caller may widen or narrow it
        self.received = 0
        self.restarts = 0  # times the stamps jumped back by more than the span
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def newest(self) -> int | None:
        """The newest stamp held (ns), None when empty."""
        return self._newest if self._items else None

    def put(self, stamp_ns: int, item: T) -> None:
        with self._lock:
            items, newest = self._items, self._newest
            if newest is not None and stamp_ns < newest - self.span_ns:
                items.clear()  # time went back: the old stamps are void
                self.restarts += 1
                newest = None
            items.append((stamp_ns, item))
            newest = self._newest = stamp_ns if newest is None else max(newest, stamp_ns)
            while items and items[0][0] < newest - self.span_ns:
                items.popleft()
            self.received += 1

    def nearest(self, stamp_ns: int, max_skew_ns: int | None) -> tuple[T, int] | None:
        """(item, |skew| ns) with the stamp closest to ``stamp_ns`` (an exact one wins; the
        newer of two equally near), or None when none lies within ``max_skew_ns`` (None: the
        nearest at any distance, or None when empty)."""
        with self._lock:
            items = list(self._items)
        best: tuple[T, int] | None = None
        for stamp, item in reversed(items):
            skew = abs(stamp - stamp_ns)
            if (max_skew_ns is None or skew <= max_skew_ns) and (best is None or skew < best[1]):
                best = (item, skew)
                if skew == 0:
                    break
        return best
