"""Ray tables and depth -> colour pixel maps built beside the node's worker, never on it.

A depth image at another resolution than the colour image needs the depth camera's rays and,
for each depth pixel, the colour pixel its ray falls on: about a second at 1280x720, two at
1920x1080 (seg_ros.depth.rays). :class:`MapCache` builds them on a thread of its own and answers
at once: the maps when ready, None while they are built (the caller skips that frame's depth
and says why). The last ``keep`` pairs stay cached, so a camera_info cycling through a few
values is cache hits, not a rebuild per frame; requests are latest-wins.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from seg_ros.depth.rays import RayTable, colour_pixel_map
from seg_ros.floor.camera import CameraModel

MapKey = tuple[CameraModel, CameraModel | None]  # (depth camera, colour camera or None)
INLINE_PIXELS = 120_000  # a map this small (tens of ms) is built on the caller's thread


@dataclass(frozen=True, eq=False)
class DepthMaps:
    """The rays of the depth camera and the flat colour pixel of each depth pixel (None:
    registered pixel for pixel)."""

    rays: RayTable
    pixel_map: np.ndarray | None


@dataclass
class MapStatus:
    """What the builder is doing, for diagnostics (monotonic seconds)."""

    builds: int = 0
    building_since: float = 0.0  # 0 when idle
    building: str = ""           # "WxH" of the depth image being built for
    last_build_s: float = 0.0
    last_error: str = ""


def _build(key: MapKey) -> DepthMaps:
    depth, colour = key
    return DepthMaps(RayTable.for_camera(depth),
                     None if colour is None else colour_pixel_map(depth, colour))


class MapCache:
    """Latest-wins, off-thread builder and small cache of :class:`DepthMaps`."""

    def __init__(self, keep: int = 8) -> None:
        self._keep = max(1, keep)
        self._done: OrderedDict[MapKey, DepthMaps] = OrderedDict()
        self._wanted: MapKey | None = None
        self._failed: MapKey | None = None
        self._building: MapKey | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.status = MapStatus()

    def get(self, depth: CameraModel, colour: CameraModel | None, inline: bool = True
            ) -> DepthMaps | None:
        """The maps of this pair, or None while they are built (requested now). ``inline``:
        a small depth image (<= INLINE_PIXELS) is built on the caller's thread at once."""
        key = (depth, colour)
        with self._cond:
            maps = self._done.get(key)
            if maps is not None:
                self._done.move_to_end(key)
                return maps
        if inline and depth.image_width * depth.image_height <= INLINE_PIXELS:
            self._build(key)
            with self._cond:
                return self._done.get(key)
        with self._cond:
            if key not in (self._wanted, self._failed, self._building):
                self._wanted = key
                self._cond.notify()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="seg_ros_depth_maps",
                                                daemon=True)
                self._thread.start()
        return None

    def wait(self, depth: CameraModel, colour: CameraModel | None, timeout: float = 60.0
             ) -> DepthMaps | None:
        """Blocking :meth:`get` (tests, benchmarks); None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while (maps := self.get(depth, colour, inline=False)) is None and time.monotonic() < end:
            time.sleep(0.005)
        return maps

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
                assert key is not None
                self._building = key
            self._build(key)
            with self._cond:
                self._building = None

    def _build(self, key: MapKey) -> None:
        st = self.status
        st.building = f"{key[0].image_width}x{key[0].image_height}"
        st.building_since = time.monotonic()
        try:
            maps: DepthMaps | None = _build(key)
            st.last_error = ""
        except (ValueError, MemoryError, OverflowError) as e:
            maps, st.last_error = None, f"{type(e).__name__}: {e}"
        st.last_build_s = time.monotonic() - st.building_since
        st.building_since = 0.0
        with self._cond:
            if maps is None:
                self._failed = key
                return
            st.builds += 1
            self._done[key] = maps
            while len(self._done) > self._keep:
                self._done.popitem(last=False)
