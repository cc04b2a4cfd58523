"""Half-blind input detection (seg_ros.ros.cadence): the camera's rate from its image stamps and
the received fraction, on stamp sequences of steady, lossy, jittery and restarted cameras."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from seg_ros.ros.cadence import DDS_CAUSE, WINDOW_S, InputCadence, frame_period

MS = 1_000_000
T0 = 1_700_000_000 * 10**9


def feed(cadence: InputCadence, stamps: list[int], camera: str = "") -> InputCadence:
    for s in stamps:
        cadence.note(camera, s)
    return cadence


def camera(hz: float, seconds: float, keep: float = 1.0, jitter_ms: float = 0.0,
           seed: int = 0) -> list[int]:
    """Stamps of a camera at ``hz`` of which a random ``keep`` share arrives."""
    rng = random.Random(seed)
    period = 1e9 / hz
    return [round(T0 + k * period + rng.uniform(-jitter_ms, jitter_ms) * MS)
            for k in range(int(hz * seconds)) if rng.random() < keep]


def test_a_whole_stream_is_not_half_blind():
    c = feed(InputCadence(), camera(30, 6, jitter_ms=2))
    r = c.reception()
    assert r is not None and r.fraction > 0.97 and r.period_s == pytest.approx(1 / 30, rel=0.05)
    assert c.half_blind() is None


@pytest.mark.parametrize(("keep", "hz"), [(0.43, 5), (0.23, 5), (0.5, 30), (0.1, 20)])
def test_lost_frames_give_the_received_fraction(keep: float, hz: float):
    """The issue's measurements: 43 % (640x480) and 23 % (1280x720) of a 5 Hz camera."""
    stamps = camera(hz, 30, keep=keep, jitter_ms=1, seed=3)
    c = feed(InputCadence(), stamps)
    r = c.half_blind()
    assert r is not None and r.period_s == pytest.approx(1 / hz, rel=0.05)
    recent = [s for s in stamps if stamps[-1] - s <= WINDOW_S * 1e9]
    assert r.received == len(recent)
    assert r.fraction == pytest.approx(keep, abs=0.2)
    line = r.describe("/cam/image_raw")
    assert f"{r.fraction:.0%}" in line and "/cam/image_raw" in line and DDS_CAUSE in line
    assert "LARGE_DATA" in line and "input_transport: compressed" in line


def test_one_late_stamp_is_no_loss():
    stamps = camera(10, 5)
    stamps[20] += 40 * MS  # one frame stamped late, its neighbours on time
    assert feed(InputCadence(), stamps).half_blind() is None


def test_an_unsteady_camera_makes_no_claim():
    rng = random.Random(1)
    stamps, t = [], T0
    for _ in range(60):
        t += rng.randint(100, 170) * MS  # no common period
        stamps.append(t)
    assert frame_period([b - a for a, b in pairwise(stamps)]) is None
    assert feed(InputCadence(), stamps).reception() is None


def test_too_few_frames_make_no_claim_and_unstamped_are_ignored():
    c = feed(InputCadence(), [*camera(5, 1.0, keep=0.5, seed=2), 0, -5])
    assert c.reception() is None


def test_a_restarted_stream_and_cameras_apart():
    c = InputCadence()
    feed(c, camera(10, 10, keep=0.4, seed=4), "left")
    feed(c, [T0 - 60 * 10**9 + s - T0 for s in camera(10, 6)], "left")  # bag loop: starts over
    feed(c, camera(10, 6), "right")
    assert sorted(c.cameras()) == ["left", "right"]
    assert c.half_blind("left") is None and c.half_blind("right") is None
    before = c.reception("right")
    feed(c, [T0 + 5_850 * MS, T0 + 5_900 * MS], "right")  # reordered, repeated: ignored
    assert c.reception("right") == before
    feed(c, camera(10, 6, keep=0.3, seed=5), "right")  # 6 s back: a new (lossy) stream
    r = c.half_blind("right")
    assert r is not None and r.received < 0.5 * r.expected


def test_a_pause_starts_the_rate_anew():
    """A camera restarted at a third of its rate after a pause is not taken for a lossy one."""
    first = camera(30, 5)
    later = [first[-1] + 6 * 10**9 + s - T0 for s in camera(10, 5)]
    c = feed(InputCadence(), first + later)
    r = c.reception()
    assert r is not None and r.period_s == pytest.approx(0.1) and r.fraction == 1.0


def test_a_new_rate_without_a_pause_is_learnt_from_the_recent_window():
    first = camera(4, 6)
    later = [first[-1] + 1 * 10**9 + s - T0 for s in camera(10, 6, keep=0.45, seed=7)]
    r = feed(InputCadence(), first + later).half_blind()
    assert r is not None and r.period_s == pytest.approx(0.1) and r.fraction < 0.7


def test_alternating_gaps_are_no_loss():
    """A camera whose stamps alternate 100 / 150 ms fits a 50 ms period: not taken for loss."""
    stamps = [T0 + sum(100 * MS if k % 2 else 150 * MS for k in range(n)) for n in range(60)]
    assert feed(InputCadence(), stamps).half_blind() is None


def test_heavy_loss_with_no_frames_back_to_back():
    stamps = [T0 + k * 50 * MS for k in (0, 3, 10, 14, 19, 27, 30, 38, 45, 49, 57, 60, 66, 75)]
    r = feed(InputCadence(), stamps).half_blind()
    assert r is not None and r.period_s == pytest.approx(0.05) and r.fraction < 0.3


def test_the_middlewares_lost_count_judges_before_the_stamps_can():
    """Samples the middleware reports lost give the fraction from the first second: 2 frames
    received and 28 lost (stamps too few for a rate) is 7 %, named as the middleware's count."""
    c = InputCadence()
    for k, s in enumerate(camera(30, 1.0)[:2]):
        c.note("", s, now=100.0 + k * 0.4)
    for k in range(28):
        c.note_lost("", 1, now=100.0 + k / 30)
    r = c.half_blind(now=101.0)
    assert r is not None and (r.received, r.expected, r.lost) == (2, 30, 28)
    assert r.period_s is None  # two stamps: no rate yet, and none needed
    line = r.describe("/cam/image_raw")
    assert line.startswith("half-blind: 7% of the camera's frames received on /cam/image_raw")
    assert "28 lost in transport by the middleware's count" in line and DDS_CAUSE in line
    assert c.half_blind(now=101.0 + WINDOW_S + 0.1) is None  # losses age out of the window


def test_a_few_lost_samples_are_no_half_blindness_and_nothing_arriving_is():
    c = InputCadence()
    for k in range(100):
        c.note("a", T0 + k * 33 * MS, now=50.0 + k * 0.033)
    c.note_lost("a", 3, now=52.0)
    c.note_lost("b", 12, now=52.0)  # camera b: every sample lost, none arrived
    r = c.reception("a", now=53.3)
    assert r is not None and r.lost == 3 and r.fraction > 0.95 and c.half_blind("a", 53.3) is None
    blind = c.half_blind("b", now=53.3)
    assert blind is not None and blind.received == 0 and blind.fraction == 0.0
    assert sorted(c.cameras()) == ["a", "b"]
    assert c.half_blind("b", now=52.1) is not None and c.reception("c") is None
