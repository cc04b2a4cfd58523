"""Fast fuzz subset (make test): a few hundred malformed Image / CompressedImage / CameraInfo
messages (hypothesis strategies in test/cases/fuzz.py) against two live node processes. The
full >= 10,000-message run is in `make soak`."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from cases.fuzz import bad_images, run_fuzz

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_fuzzed_messages_never_crash_the_node(tiny_model: Path) -> None:
    rep = run_fuzz(tiny_model, 300, check_every=30)
    assert rep.messages == 300 and rep.crashes == 0, rep
    assert rep.unanswered == 0, rep  # every good frame after bad ones was processed
    assert all(rep.accounted.values()), rep  # received == processed+dropped+rejected+...
    assert all(n > 0 for n in rep.rejected.values()), rep
    assert not any(rep.failed.values()), rep  # bad input is a CodecError, never a crash path
    assert rep.floor_errors["/fuzz_raw"] > 0, rep  # bad CameraInfos reached the floor hook
    # rejections are logged, rate-limited (5 s): a handful of lines, not one per message
    assert all(1 <= n <= 1 + rep.seconds / 5 + 1 for n in rep.rejection_log_lines.values()), rep


def test_huge_declared_size_is_refused_before_allocating() -> None:
    """height*step = 4 GB with 16 bytes of data: CodecError, no 4 GB buffer (tracemalloc)."""
    import tracemalloc

    from seg_ros import codec

    tracemalloc.start()
    try:
        for h, w, step in ((65536, 21846, 65538), (2**32 - 1, 2**32 - 1, 2**32 - 1),
                           (1, 2**31, 3 * 2**31)):
            with pytest.raises(codec.CodecError):
                codec.decode_raw("rgb8", h, w, step, bytes(16))
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_strategies_cover_the_edges() -> None:
    from hypothesis import HealthCheck, given, settings

    seen = {"zero": 0, "huge": 0, "unknown": 0}

    @settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck))
    @given(f=bad_images())
    def look(f: dict) -> None:
        seen["zero"] += f["height"] == 0 or f["width"] == 0
        seen["huge"] += f["height"] * max(f["step"], 1) >= 2**32
        seen["unknown"] += f["encoding"] not in ("rgb8", "bgr8", "mono8")

    look()
    assert all(v > 0 for v in seen.values()), seen
