"""Pairing depth images with colour frames by header stamp, ROS-free.

Drivers of registered RGB-D cameras stamp both images of a pair alike (RealSense, ZED, OAK-D)
or within a frame period of each other; a colour frame takes the depth image with the same
stamp, else the nearest one within ``max_skew_ns``. A small buffer of the latest depth images
is enough: the colour frame is matched right after inference, when its depth twin has arrived.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class StampBuffer(Generic[T]):
    """The latest ``size`` items by stamp (ns); put() on one thread, nearest() on another."""

    def __init__(self, size: int = 16) -> None:
        self._items: deque[tuple[int, T]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.received = 0

    def put(self, stamp_ns: int, item: T) -> None:
        with self._lock:
            self._items.append((stamp_ns, item))
            self.received += 1

    def nearest(self, stamp_ns: int, max_skew_ns: int) -> tuple[T, int] | None:
        """(item, |skew| ns) with the stamp closest to ``stamp_ns`` (an exact one wins; the
        newer of two equally near), or None when none lies within ``max_skew_ns``."""
        with self._lock:
            items = list(self._items)
        best: tuple[T, int] | None = None
        for stamp, item in reversed(items):
            skew = abs(stamp - stamp_ns)
            if skew <= max_skew_ns and (best is None or skew < best[1]):
                best = (item, skew)
                if skew == 0:
                    break
        return best
