"""Slow tables built beside the node's worker, never on it: one latest-wins builder and cache.

Ground lookup tables (seg_ros.floor) and depth ray / pixel maps (seg_ros.depth) take up to
seconds to build; built on the worker they would stop every output for that long. A
:class:`BackgroundCache` builds on a thread of its own and answers at once: the value when it
is ready, None while it is built (the caller skips that frame's output and says why). The
last ``keep`` values stay cached, so an input flipping between a few values costs cache hits,
not a rebuild each time; requests are latest-wins (an input that keeps changing builds only
the newest), and a key whose build failed is not retried until another key is asked for.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
BUILD_ERRORS = (ValueError, MemoryError, OverflowError)  # reported through status, not raised


@dataclass
class BuildStatus:
    """What the builder is doing, for diagnostics (monotonic seconds)."""

    builds: int = 0              # values built since start
    building_since: float = 0.0  # 0 when idle
    building: str = ""           # what is (or was last) built, in words ("" if unnamed)
    last_build_s: float = 0.0    # how long the last build took
    last_error: str = ""         # why the last build failed ("" = it did not)


class BackgroundCache(Generic[K, V]):
    """Latest-wins, off-thread builder and small LRU cache of ``build(key)`` values.

    Args:
        build: makes the value of a key (may take seconds; raises one of BUILD_ERRORS).
        keep: values kept, least recently used dropped first.
        thread_name: the builder thread's name (seen in py-spy / gdb).
        label: a key in words for :attr:`status` ``building``.
    """

    def __init__(self, build: Callable[[K], V], keep: int, thread_name: str,
                 label: Callable[[K], str] | None = None) -> None:
        self._make, self._keep, self._thread_name = build, max(1, keep), thread_name
        self._label = label
        self._done: OrderedDict[K, V] = OrderedDict()
        self._wanted: K | None = None
        self._failed: K | None = None     # not requested again until something changes
        self._building: K | None = None   # the key the builder thread is on
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.last_key: K | None = None    # the key of the last build, done or failed
        self.status = BuildStatus()

    def cached(self, key: K) -> V | None:
        """The value of ``key`` if it is built (marked recently used), else None."""
        with self._cond:
            value = self._done.get(key)
            if value is not None:
                self._done.move_to_end(key)
            return value

    def build_now(self, key: K) -> V | None:
        """Build ``key`` on the caller's thread (small tables: milliseconds); None if it failed."""
        self._build(key)
        with self._cond:
            return self._done.get(key)

    def request(self, key: K) -> None:
        """Ask the builder thread for ``key`` (replacing any older request) and return at once."""
        with self._cond:
            if key not in (self._wanted, self._failed, self._building):
                self._wanted = key
                self.status.building = self._label(key) if self._label else ""
                self._cond.notify()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self._thread_name,
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._wanted is not None)
                if self._closed:
                    return
                key, self._wanted = self._wanted, None
                assert key is not None  # the wait ends on a wanted key or on close
                self._building = key
            self._build(key)
            with self._cond:
                self._building = None

    def _build(self, key: K) -> None:
        st = self.status
        st.building = self._label(key) if self._label else ""
        st.building_since = time.monotonic()
        value: V | None
        try:
            value = self._make(key)
            st.last_error = ""
        except BUILD_ERRORS as e:  # the caller sees it through status
            value, st.last_error = None, f"{type(e).__name__}: {e}"
        st.last_build_s = time.monotonic() - st.building_since
        st.building_since, self.last_key = 0.0, key
        with self._cond:
            if value is None:
                self._failed = key
                return
            st.builds += 1
            self._done[key] = value
            while len(self._done) > self._keep:
                self._done.popitem(last=False)
