"""GridSpec: where a floor grid lies (metres, in its frame), shared by the grid and its rays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seg_ros.errors import ConfigError

MAX_CELLS = 4_000_000  # e.g. 100 m x 100 m at 5 cm: ~70 MB per lookup table, 4 MB per message


@dataclass(frozen=True)
class GridSpec:
    """Geometry of the grid, all in metres in ``frame_id`` (a frame on the floor, z up).

    Attributes:
        resolution: cell edge (m/cell).
        width_m, height_m: extent along x (columns) and y (rows); rounded to whole cells.
        origin_x, origin_y: lower-left corner of cell (0, 0) (OccupancyGrid info.origin).
        max_range_m: cells farther than this horizontally from the camera stay unknown
            (far pixels cover large floor areas and the flat-floor error grows with range).
        frame_id: the grid frame; base_footprint keeps the camera pose, hence the LUT, fixed.
    """

    resolution: float = 0.05
    width_m: float = 10.0
    height_m: float = 10.0
    origin_x: float = 0.0
    origin_y: float = -5.0
    max_range_m: float = 8.0
    frame_id: str = "base_footprint"

    def __post_init__(self) -> None:
        for name in ("resolution", "width_m", "height_m", "origin_x", "origin_y", "max_range_m"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("resolution", "width_m", "height_m", "max_range_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"grid {name}={value} must be a positive number of metres")
        if self.cols < 1 or self.rows < 1:
            raise ConfigError(f"grid {self.width_m} x {self.height_m} m is smaller than one "
                              f"{self.resolution} m cell: enlarge it or refine the resolution")
        if self.cols * self.rows > MAX_CELLS:
            raise ConfigError(
                f"grid of {self.cols} x {self.rows} = {self.cols * self.rows:,} cells exceeds "
                f"{MAX_CELLS:,}: coarsen the resolution ({self.resolution} m) or shrink the "
                f"grid ({self.width_m} x {self.height_m} m)")

    @property
    def cols(self) -> int:
        """Cells along x (OccupancyGrid info.width)."""
        return round(self.width_m / self.resolution)

    @property
    def rows(self) -> int:
        """Cells along y (OccupancyGrid info.height)."""
        return round(self.height_m / self.resolution)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x of each column centre, y of each row centre) in metres in the grid frame."""
        xs = self.origin_x + (np.arange(self.cols) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.rows) + 0.5) * self.resolution
        return xs, ys
