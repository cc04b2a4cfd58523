"""Wall-time samples and medians over repeats after warm-up: the one timing loop of the
benchmarks and `seg-ros gpu-check`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def samples_ms(fn: Callable[[int], object], repeats: int, warmup: int = 0) -> list[float]:
    """Wall time (ms) of each of ``repeats`` calls ``fn(k)``, after ``warmup`` untimed calls."""
    for k in range(warmup):
        fn(k)
    out = []
    for k in range(repeats):
        t0 = time.perf_counter()
        fn(k)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def median_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    return statistics.median(samples_ms(lambda _k: fn(), repeats, warmup))
