"""Ground lookup tables built beside the node's worker, never on it.

A lookup table of a large grid takes seconds to build (16 M cells: ~7 s here); built on the
worker it would stop every output for that long. :class:`LutCache` builds on a thread of its own
and answers at once: the table when it is ready, None while it is being built (the caller skips
that frame's grid and reports why; labels keep flowing). The last ``keep`` tables stay cached,
so a camera_info or pose that flips between two values is two cache hits, not a rebuild each
time. Requests are latest-wins: a camera that keeps changing builds only the newest table.
"""

from __future__ import annotations

import time

from seg_ros.builds import BackgroundCache
from seg_ros.floor.camera import CameraModel, CameraPose
from seg_ros.floor.grid import GridSpec, GroundLut, build_lut

LutKey = tuple[CameraModel, CameraPose, GridSpec]
INLINE_CELLS = 100_000  # a first table this small (tens of ms) is built on the caller's thread


def _build(key: LutKey) -> GroundLut:
    return build_lut(*key)


class LutCache(BackgroundCache[LutKey, GroundLut]):
    """Latest-wins, off-thread builder and small cache of :class:`GroundLut` tables."""

    def __init__(self, keep: int = 2) -> None:
        super().__init__(_build, keep, "seg_ros_lut")

    def get(self, camera: CameraModel, pose: CameraPose, spec: GridSpec,
            inline_s: float = 0.0) -> GroundLut | None:
        """The table for this camera, pose and grid, or None while it is built (requested now).

        ``inline_s``: when the last build of a grid of this size took less than this many
        seconds (or, for the first grid of a size, it has at most INLINE_CELLS cells), build on
        the caller's thread instead: a pose from tf that moves every frame needs a new table
        each frame, and the first frame gets its grid; a small table costs milliseconds."""
        key = (camera, pose, spec)
        lut = self.cached(key)
        if lut is not None:
            return lut
        if inline_s > 0 and self.status.building_since == 0 and self._quick(spec, inline_s):
            return self.build_now(key)
        self.request(key)
        return None

    def _quick(self, spec: GridSpec, inline_s: float) -> bool:
        """Whether a table of ``spec`` is cheap enough to build on the caller's thread."""
        last = self.last_key[2] if self.last_key is not None else None
        if last is not None and (last.rows, last.cols) == (spec.rows, spec.cols):
            return 0 < self.status.last_build_s < inline_s
        return spec.rows * spec.cols <= INLINE_CELLS  # the first of its size: by cell count

    def wait(self, camera: CameraModel, pose: CameraPose, spec: GridSpec,
             timeout: float = 60.0) -> GroundLut | None:
        """Blocking :meth:`get` (tests, offline tools); None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while (lut := self.get(camera, pose, spec)) is None and time.monotonic() < end:
            time.sleep(0.005)
        return lut
