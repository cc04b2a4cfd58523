"""Ground lookup tables built beside the node's worker, never on it.

A lookup table of a large grid takes seconds to build (16 M cells: ~7 s here); built on the
worker it would stop every output for that long. :class:`LutCache` builds on a thread of its own
and answers at once: the table when it is ready, None while it is being built (the caller skips
that frame's grid and reports why; labels keep flowing). The last ``keep`` tables stay cached,
so a camera_info or pose that flips between two values is two cache hits, not a rebuild each
time. Requests are latest-wins: a camera that keeps changing builds only the newest table.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from seg_ros.floor.camera import CameraModel, CameraPose
from seg_ros.floor.grid import GridSpec, GroundLut, build_lut

LutKey = tuple[CameraModel, CameraPose, GridSpec]
INLINE_CELLS = 100_000  # a first table this small (tens of ms) is built on the caller's thread


@dataclass
class LutStatus:
    """What the cache is doing, for diagnostics (monotonic seconds)."""

    builds: int = 0              # tables built since start
    building_since: float = 0.0  # 0 when idle
    last_build_s: float = 0.0    # how long the last build took
    last_error: str = ""         # why the last build failed ("" = it did not)


class LutCache:
    """Latest-wins, off-thread builder and small cache of :class:`GroundLut` tables."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = max(1, keep)
        self._done: OrderedDict[LutKey, GroundLut] = OrderedDict()
        self._wanted: LutKey | None = None
        self._failed: LutKey | None = None  # not requested again until something changes
        self._last_size: tuple[int, int] = (0, 0)  # grid (rows, cols) of the last build
        self._building: LutKey | None = None  # the table the builder thread is on
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.status = LutStatus()

    def get(self, camera: CameraModel, pose: CameraPose, spec: GridSpec,
            inline_s: float = 0.0) -> GroundLut | None:
        """The table for this camera, pose and grid, or None while it is built (requested now).

        ``inline_s``: when the last build of a grid of this size took less than this many
        seconds (or, for the first grid of a size, it has at most INLINE_CELLS cells), build on
        the caller's thread instead: a pose from tf that moves every frame needs a new table
        each frame, and the first frame gets its grid; a small table costs milliseconds."""
        key = (camera, pose, spec)
        with self._cond:
            lut = self._done.get(key)
            if lut is not None:
                self._done.move_to_end(key)
                return lut
            quick = inline_s > 0 and self.status.building_since == 0 and (
                0 < self.status.last_build_s < inline_s
                if self._last_size == (spec.rows, spec.cols)
                else spec.rows * spec.cols <= INLINE_CELLS)  # first of its size: by cell count
        if quick:
            self._build(key)
            return self._done.get(key)
        with self._cond:
            if key not in (self._wanted, self._failed, self._building):
                self._wanted = key
                self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="seg_ros_lut", daemon=True)
                self._thread.start()
        return None

    def wait(self, camera: CameraModel, pose: CameraPose, spec: GridSpec,
             timeout: float = 60.0) -> GroundLut | None:
        """Blocking :meth:`get` (tests, offline tools); None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while (lut := self.get(camera, pose, spec)) is None and time.monotonic() < end:
            time.sleep(0.005)
        return lut

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

    def _build(self, key: LutKey) -> None:
        st = self.status
        st.building_since = time.monotonic()
        try:
            lut = build_lut(*key)
            st.last_error = ""
        except (ValueError, MemoryError) as e:  # the caller sees it through status
            lut, st.last_error = None, f"{type(e).__name__}: {e}"
        st.last_build_s = time.monotonic() - st.building_since
        self._last_size = (key[2].rows, key[2].cols)
        st.building_since = 0.0
        with self._cond:
            if lut is None:
                self._failed = key
                return
            st.builds += 1
            self._done[key] = lut
            while len(self._done) > self._keep:
                self._done.popitem(last=False)
