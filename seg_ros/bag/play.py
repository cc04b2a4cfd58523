"""Bag -> live topics with the bag's timing, like ``ros2 bag play`` (rclpy).

The bag's raw CDR bytes are published unchanged (``publisher.publish(bytes)``), so nothing is
deserialised on the way. Each topic is offered with the QoS its recorded publishers offered
(metadata.yaml): transient-local for a latched topic such as ~/label_info, so a subscriber that
joins later still gets it, as with ``ros2 bag play``. Message timing follows the bag timestamps
scaled by ``1 / rate``; with ``clock_hz`` the bag time is also published on ``/clock`` (for
``use_sim_time`` nodes), at that frequency and with every message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.bag import BagError, iter_raw, open_reader


@dataclass
class PlayResult:
    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    wall_s: float = 0.0
    interrupted: bool = False


def play_bag(
    bag: str | Path,
    rate: float = 1.0,
    loop: bool = False,
    clock_hz: float | None = None,
    topics: list[str] | None = None,
    delay: float = 0.5,
    domain_id: int | None = None,
    max_loops: int | None = None,
    progress: bool = True,
    wait_for_subscribers: float = 0.0,
) -> PlayResult:
    """Publish ``bag`` onto live topics.

    Args:
        rate: playback speed factor (2.0 = twice real time).
        loop: start again at the end (until Ctrl-C or ``max_loops``).
        clock_hz: publish /clock at this frequency (None: no /clock).
        topics: only these topics (default: all).
        delay: seconds to wait after creating publishers, so subscribers can match.
        wait_for_subscribers: then wait up to this many seconds until every topic has a
            subscriber (a recorder that subscribes once it discovers the topics).
    """
    from rosgraph_msgs.msg import Clock

    from seg_ros.bag.rosio import msg_class, qos, replay_qos, ros_node

    if not rate > 0:
        raise BagError(f"--rate {rate} must be > 0")
    if clock_hz is not None and not clock_hz > 0:
        raise BagError(f"--clock {clock_hz} Hz must be > 0")
    reader = open_reader(bag)
    try:
        conns = reader.connections
        if topics:
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise BagError(
                    f"bag {bag} has no topics {missing}; it has "
                    f"{sorted({c.topic for c in conns})}"
                )
            conns = [c for c in conns if c.topic in topics]
        if not conns:
            raise BagError(f"bag {bag} has no messages to play")
        result = PlayResult(published={c.topic: 0 for c in conns})
        total = sum(c.msgcount for c in conns)
        with ros_node("seg_ros_bag_player", domain_id) as (node, _executor):
            pubs: dict[str, Any] = {}
            for c in conns:
                if c.topic not in pubs:
                    offered = getattr(c.ext, "offered_qos_profiles", [])
                    pubs[c.topic] = node.create_publisher(msg_class(c.msgtype), c.topic,
                                                          replay_qos(offered))
            clock_pub = (node.create_publisher(Clock, "/clock", qos(False, 1)) if clock_hz
                         else None)
            time.sleep(delay)  # let DDS discovery match subscribers before the first message
            deadline = time.monotonic() + wait_for_subscribers
            while (time.monotonic() < deadline
                   and not all(p.get_subscription_count() for p in pubs.values())):
                time.sleep(0.05)
            wall0 = time.monotonic()
            try:
                while True:
                    _play_once(reader, str(bag), conns, pubs, clock_pub, rate, clock_hz,
                               result, total, progress)
                    result.loops += 1
                    if not loop or (max_loops is not None and result.loops >= max_loops):
                        break
            except KeyboardInterrupt:
                result.interrupted = True
            result.wall_s = time.monotonic() - wall0
        return result
    finally:
        reader.close()


def _play_once(reader: Any, source: str, conns: list[Any], pubs: dict[str, Any],
               clock_pub: Any, rate: float,
               clock_hz: float | None, result: PlayResult, total: int, progress: bool) -> None:
    from rosgraph_msgs.msg import Clock
    from tqdm import tqdm

    bag0: int | None = None
    wall0 = time.monotonic()
    next_clock = wall0
    period = 1.0 / clock_hz if clock_hz else None

    def publish_clock(bag_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        clock_pub.publish(msg)

    with tqdm(total=total, desc="bag play", unit="msg", disable=not progress) as bar:
        for conn, t, raw in iter_raw(reader, conns, source):
            if bag0 is None:
                bag0 = t
            due = wall0 + (t - bag0) / 1e9 / rate
            while True:
                now = time.monotonic()
                if clock_pub is not None and period is not None and now >= next_clock:
                    # bag time now, never past the message due next: /clock never steps back
                    publish_clock(min(t, bag0 + int((now - wall0) * rate * 1e9)))
                    next_clock += period
                if now >= due:
                    break
                wake = due if period is None else min(due, next_clock)
                time.sleep(max(0.0, wake - now))
            if clock_pub is not None:
                publish_clock(t)
            pubs[conn.topic].publish(bytes(raw))
            result.published[conn.topic] += 1
            bar.update()
