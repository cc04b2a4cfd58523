"""ROS-free node machinery: the output watchdog and the floor grid's lookup-table cache."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from seg_ros.floor import CameraModel, CameraPose, GridSpec, build_lut
from seg_ros.floor.lut_cache import LutCache
from seg_ros.pipeline import (
    ERROR,
    WARN,
    Frame,
    Mailbox,
    OutputOrder,
    OutputWatchdog,
    StageTimer,
    Stats,
)

K = (400.0, 0.0, 240.0, 0.0, 400.0, 180.0, 0.0, 0.0, 1.0)
POSE = CameraPose.from_xyz_rpy(0.0, 0.0, 1.2, 0.0, 0.3, 0.0)
SMALL = GridSpec(0.1, 4.0, 4.0, 0.0, -2.0, max_range_m=8.0)


def _why(name: str) -> str:
    return f"because of {name}"


def test_watchdog_warns_then_errors_naming_output_and_reason() -> None:
    dog = OutputWatchdog()
    assert dog.check(["labels"], input_since=0.0, stall_s=2.0, max_rate_hz=0.0,
                     reason=_why, now=0.0) == []  # becomes expected now
    dog.published("labels", now=1.0)
    assert dog.check(["labels"], 0.0, 2.0, 0.0, _why, now=2.9) == []
    (warn,) = dog.check(["labels"], 0.0, 2.0, 0.0, _why, now=3.5)
    assert (warn.output, warn.level, warn.reason) == ("labels", WARN, "because of labels")
    (err,) = dog.check(["labels"], 0.0, 2.0, 0.0, _why, now=5.5)
    assert err.level == ERROR and err.describe() == "labels silent for 4.5 s: because of labels"


def test_watchdog_is_quiet_without_input_and_within_the_rate_limit() -> None:
    dog = OutputWatchdog()
    dog.check(["overlay"], None, 2.0, 0.0, _why, now=0.0)
    assert dog.check(["overlay"], None, 2.0, 0.0, _why, now=100.0) == []  # no images: no stall
    assert dog.check(["overlay"], 90.0, 2.0, 0.0, _why, now=91.0) == []  # input just resumed
    # max_rate_hz 0.1: a frame every 10 s is allowed (1.5 periods = 15 s before WARN)
    dog.published("overlay", now=100.0)
    assert dog.check(["overlay"], 0.0, 2.0, 0.1, _why, now=114.0) == []
    assert dog.check(["overlay"], 0.0, 2.0, 0.1, _why, now=116.0)[0].level == WARN


def test_watchdog_measures_a_new_subscriber_from_when_it_came() -> None:
    dog = OutputWatchdog()
    dog.check([], 0.0, 2.0, 0.0, _why, now=0.0)
    assert dog.check(["floor_grid"], 0.0, 2.0, 0.0, _why, now=50.0) == []
    assert dog.check(["floor_grid"], 0.0, 2.0, 0.0, _why, now=53.0)[0].seconds == pytest.approx(3)
    dog.check([], 0.0, 2.0, 0.0, _why, now=54.0)  # unsubscribed: forgotten
    assert dog.check(["floor_grid"], 0.0, 2.0, 0.0, _why, now=60.0) == []


def test_lut_cache_builds_beside_the_caller_and_keeps_two() -> None:
    cache = LutCache(keep=2)
    a, b = CameraModel(480, 360, K), CameraModel(480, 360, (401.0, *K[1:]))
    assert cache.get(a, POSE, SMALL) is None  # requested, not built on this thread
    lut_a = cache.wait(a, POSE, SMALL)
    lut_b = cache.wait(b, POSE, SMALL)
    assert lut_a is not None and lut_b is not None and cache.status.builds == 2
    for _ in range(5):  # a camera_info flipping between two values: cache hits only
        assert cache.get(a, POSE, SMALL) is lut_a and cache.get(b, POSE, SMALL) is lut_b
    assert cache.status.builds == 2
    ref = build_lut(a, POSE, SMALL)
    assert (lut_a.pixel_index == ref.pixel_index).all()
    cache.close()


def test_lut_cache_builds_small_tables_inline_once_timed() -> None:
    cache = LutCache()
    cam = CameraModel(480, 360, K)
    cache.wait(cam, POSE, SMALL)
    moved = CameraPose.from_xyz_rpy(0.1, 0.0, 1.2, 0.0, 0.3, 0.0)  # a pose from tf, moving
    assert cache.get(cam, moved, SMALL, inline_s=10.0) is not None  # built now, on this thread
    assert cache.get(cam, CameraPose.from_xyz_rpy(0.2, 0, 1.2, 0, 0.3, 0), SMALL,
                     inline_s=0.0) is None  # slow builds never block the caller
    cache.close()


def test_lut_cache_latest_request_wins() -> None:
    cache = LutCache()
    cam = CameraModel(480, 360, K)
    big = GridSpec(0.02, 40.0, 40.0, 0.0, -20.0, max_range_m=40.0)  # 4 M cells: seconds
    assert cache.get(cam, POSE, big) is None
    deadline = time.monotonic() + 10
    while cache.status.building_since == 0 and time.monotonic() < deadline:
        time.sleep(0.001)  # until the builder is on the big table
    for x in (0.1, 0.2, 0.3):  # a camera that keeps moving while the big table builds
        cache.get(cam, CameraPose.from_xyz_rpy(x, 0, 1.2, 0, 0.3, 0), SMALL)
    last = cache.wait(cam, CameraPose.from_xyz_rpy(0.3, 0, 1.2, 0, 0.3, 0), SMALL)
    assert last is not None and cache.status.builds == 2  # the big one and only the newest
    cache.close()


def test_mailbox_latest_frame_wins() -> None:
    box = Mailbox()
    assert box.take(timeout=0.01) is None
    assert not box.put(Frame("a", 1.0))
    assert box.put(Frame("b", 2.0))  # overwrote "a"
    taken = box.take(0.01)
    assert box.dropped == 1 and taken is not None and taken.msg == "b"
    assert box.take(0.01) is None
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(box.take(timeout=5)))
    t.start()
    box.put(Frame("c", 3.0))
    t.join(2)
    assert got[0].msg == "c"
    box.close()
    assert box.take(timeout=5) is None  # closed: returns at once


def test_output_order_newer_frame_waits_for_older() -> None:
    """Frame 2 finishes first; it publishes labels only after frame 1 did, nothing is lost."""
    order = OutputOrder()
    published: list[tuple[str, int]] = []
    order.begin(1)
    order.begin(2)

    def frame2() -> None:
        with order.turn("labels", 2):
            published.append(("labels", 2))
        order.end(2)

    t = threading.Thread(target=frame2)
    t.start()
    time.sleep(0.2)
    assert published == [], "frame 2 went out before frame 1"
    with order.turn("overlay", 1):  # other outputs of frame 1 do not hold frame 2's labels
        published.append(("overlay", 1))
    time.sleep(0.05)
    assert published == [("overlay", 1)]
    with order.turn("labels", 1):
        published.append(("labels", 1))
    t.join(2)
    order.end(1)
    assert published == [("overlay", 1), ("labels", 1), ("labels", 2)]
    order.begin(3)  # an older frame that ends without publishing releases the newer one
    order.begin(4)
    order.end(3)
    with order.turn("labels", 4):
        pass


def test_stage_timer_adds_up_a_stage_and_records_the_whole_frame() -> None:
    """A stage entered twice adds up; ``worker`` is the whole frame; unknown stages are not
    recorded (ms)."""
    stats = Stats()
    timer = StageTimer()
    for _ in range(2):
        with timer("render"):
            time.sleep(0.01)
    with timer("not_a_stage"):
        pass
    timer.record(stats.stage_ms)
    (render,), (worker,) = stats.stage_ms["render"], stats.stage_ms["worker"]
    assert 20.0 <= render <= worker
    assert "not_a_stage" not in stats.stage_ms and not stats.stage_ms["engine"]


def test_stats_bump_keeps_every_count_from_concurrent_workers() -> None:
    stats = Stats()

    def work() -> None:
        for _ in range(10_000):
            stats.bump("processed")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert stats.processed == 40_000
    stats.note_error("boom")
    assert stats.last_error == "boom" and stats.last_error_at > 0
