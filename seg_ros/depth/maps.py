"""Ray tables and depth -> colour pixel maps built beside the node's worker, never on it.

A depth image at another resolution than the colour image needs the depth camera's rays and,
for each depth pixel, the colour pixel its ray falls on: about a second at 1280x720, two at
1920x1080 (seg_ros.depth.rays). :class:`MapCache` builds them on a thread of its own and answers
at once: the maps when ready, None while they are built (the caller skips that frame's depth
and says why). The last ``keep`` pairs stay cached, so a camera_info cycling through a few
values is cache hits, not a rebuild per frame; requests are latest-wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from seg_ros.builds import BackgroundCache
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


def _build(key: MapKey) -> DepthMaps:
    depth, colour = key
    return DepthMaps(RayTable.for_camera(depth),
                     None if colour is None else colour_pixel_map(depth, colour))


def _size(key: MapKey) -> str:
    return f"{key[0].image_width}x{key[0].image_height}"


class MapCache(BackgroundCache[MapKey, DepthMaps]):
    """Latest-wins, off-thread builder and small cache of :class:`DepthMaps`."""

    def __init__(self, keep: int = 8) -> None:
        super().__init__(_build, keep, "seg_ros_depth_maps", label=_size)

    def get(self, depth: CameraModel, colour: CameraModel | None, inline: bool = True
            ) -> DepthMaps | None:
        """The maps of this pair, or None while they are built (requested now). ``inline``:
        a small depth image (<= INLINE_PIXELS) is built on the caller's thread at once."""
        key = (depth, colour)
        maps = self.cached(key)
        if maps is not None:
            return maps
        if inline and depth.image_width * depth.image_height <= INLINE_PIXELS:
            return self.build_now(key)
        self.request(key)
        return None

    def wait(self, depth: CameraModel, colour: CameraModel | None, timeout: float = 60.0
             ) -> DepthMaps | None:
        """Blocking :meth:`get` (tests, benchmarks); None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while (maps := self.get(depth, colour, inline=False)) is None and time.monotonic() < end:
            time.sleep(0.005)
        return maps
