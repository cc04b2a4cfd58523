"""Keep image-sized buffers in the heap instead of fresh mmap()s (glibc only).

Every camera frame passes through several 0.3-3 MB buffers (rmw's deserialised message, the
Python copy, the outputs and their serialised forms). glibc serves blocks above its mmap
threshold with a new mmap() and unmaps them on free, so each one page-faults in afresh: taking
one 640x480 rgb8 Image into Python cost 1.7 ms here, 0.47 ms with the thresholds below
(benchmarks/README.md). glibc's adaptive threshold often gets there by itself after the first
frees (end to end in the node, A/B runs differed by less than the noise); raising the mmap and
trim thresholds makes it certain: the usual memory set-up of real-time ROS 2 nodes, bounded by
the process's own peak use.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 << 20   # blocks below 64 MB come from the heap
TRIM_THRESHOLD_BYTES = 256 << 20  # keep up to 256 MB of freed heap for the next frames


def keep_large_buffers() -> bool:
    """Apply the thresholds to this process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
