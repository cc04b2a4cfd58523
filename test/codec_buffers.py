"""Inputs the codec tests share: the buffer types a message's data arrives as, and a smooth
test picture (JPEG keeps it within a few levels)."""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np

# bytes -> the buffer type a message's data field arrives as
CONTAINERS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "array": lambda b: array.array("B", b),  # what rclpy gives for uint8[]
    "ndarray": lambda b: np.frombuffer(b, np.uint8).copy(),
}


def smooth(h: int = 48, w: int = 64) -> np.ndarray:
    """An h x w RGB gradient: no edges, so a JPEG round trip stays within a few levels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
