"""int8 entropy calibration for TensorRT's implicit quantization (``IInt8EntropyCalibrator2``).

TensorRT's Python bindings call ``get_batch`` from C++ code declared ``noexcept``: an exception
raised there never reaches the caller of ``build_serialized_network`` (it ends calibration or
the process). So the feeding logic lives in :class:`CalibrationFeed`, which catches the error,
records it and ends calibration; the builder then calls :meth:`CalibrationFeed.raise_if_failed`
and refuses the engine, instead of shipping one calibrated on a fraction of the frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.engines.tensorrt.cuda_buffers import CudaRuntime
from seg_ros.errors import EngineError


class CalibrationFeed:
    """Frames to one device buffer, batch by batch, remembering the first failure.

    Args:
        batches: (N, 3, H, W) float32 arrays; ``shape``/``len`` as CalibrationBatches has them.
        cuda: the runtime owning the device buffer (allocated once here).
        log: progress lines.
    """

    def __init__(self, batches: Any, cuda: CudaRuntime, log: Callable[[str], None]) -> None:
        self.batches = batches
        self.cuda = cuda
        self.log = log
        self.buf = cuda.alloc(batches.shape, np.dtype(np.float32))
        self._it = iter(batches)
        self.done = 0
        self.error: str | None = None
        self.from_cache = False  # ranges read from a calibration cache: no batches needed

    def next_pointers(self) -> list[int] | None:
        """Device pointer of the next batch; None at the end or after a failure."""
        if self.error is not None:
            return None
        try:
            batch = next(self._it, None)
            if batch is None:
                return None
            self.cuda.activate()  # TensorRT may call from a thread of its own
            np.copyto(self.buf.host, batch)
            self.cuda.upload(self.buf)
            self.cuda.synchronize()
        except Exception as e:  # recorded and raised after the build: see the module doc
            self.error = f"{type(e).__name__}: {e}"
            return None
        self.done += 1
        if self.done % 20 == 0:
            self.log(f"  calibration batch {self.done}/{len(self.batches)}")
        return [self.buf.ptr]

    def raise_if_failed(self, source: str) -> None:
        """EngineError when a batch failed, or when none reached the calibrator (TensorRT then
        builds an engine with meaningless int8 ranges)."""
        if self.error is not None:
            raise EngineError(f"int8 calibration of {source} stopped at batch {self.done + 1} "
                              f"({self.error}): fix or remove that frame, or use --precision "
                              "fp16; no engine was written")
        if self.done == 0 and not self.from_cache:
            raise EngineError(f"int8 calibration of {source} received no frames: check "
                              "--calib-data")


def read_calibration_cache(path: str | Path | None) -> bytes | None:
    """Bytes of a calibration cache file, None when there is none (calibration then runs)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    return p.read_bytes()


def write_calibration_cache(path: str | Path | None, data: bytes | memoryview) -> None:
    """Write a calibration cache atomically (a killed build never leaves half a cache)."""
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(bytes(data))
    tmp.replace(p)


def make_entropy_calibrator(trt: Any, feed: CalibrationFeed, cache: Path | None,
                            log: Callable[[str], None]) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``feed`` with a calibration cache file."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()

        def get_batch_size(self) -> int:
            return int(feed.batches.shape[0])

        def get_batch(self, names: Iterable[str]) -> list[int] | None:
            return feed.next_pointers()

        def read_calibration_cache(self) -> bytes | None:
            data = read_calibration_cache(cache)
            feed.from_cache = data is not None
            if data is not None:
                log(f"reusing calibration cache {cache} (delete it to recalibrate)")
            return data

        def write_calibration_cache(self, data: Any) -> None:
            write_calibration_cache(cache, data)

    return EntropyCalibrator()
