"""Live topics -> rosbag2 (rclpy generic raw subscriptions -> rosbags writer).

Topics are subscribed as soon as they appear in the graph (their type is taken from there), with
a QoS every publisher is compatible with: transient-local when every publisher is latched (a
message published before the recorder joined, like ~/label_info, is still recorded). The QoS
profiles the publishers offer go into metadata.yaml, so ``ros2 bag play`` (and ``seg-ros bag
play``) offer a latched topic transient-local again. Bag timestamps are receive times (ns, system
clock), as ``ros2 bag record`` writes by default. The bag is written to ``.NAME.partial`` and
renamed onto ``out`` when recording ends (duration reached or Ctrl-C); an error discards it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.bag import BagError


@dataclass
class RecordResult:
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    never_seen: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def record_bag(
    topics: list[str],
    out: str | Path,
    duration: float | None = None,
    storage: str = "mcap",
    domain_id: int | None = None,
    progress: bool = True,
) -> RecordResult:
    """Record ``topics`` into ``out`` for ``duration`` seconds (None: until Ctrl-C)."""
    from seg_ros.bag.rosio import RawBagWriter, matching_qos, msg_class, offered_qos, ros_node

    if not topics:
        raise BagError("name at least one topic to record")
    topics = [t if t.startswith("/") else "/" + t for t in topics]
    if duration is not None and not duration > 0:
        raise BagError(f"--duration {duration} must be > 0 seconds")
    writer = RawBagWriter(out, storage)
    subs: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        with ros_node("seg_ros_bag_recorder", domain_id) as (node, executor):
            last_poll = 0.0
            try:
                while duration is None or time.monotonic() - t0 < duration:
                    now = time.monotonic()
                    if len(subs) < len(topics) and now - last_poll > 0.2:
                        last_poll = now
                        graph = dict(node.get_topic_names_and_types())
                        for topic in topics:
                            if topic in subs or topic not in graph:
                                continue
                            msgtype = graph[topic][0]
                            writer.declare(topic, msgtype, offered_qos(node, topic))
                            subs[topic] = node.create_subscription(
                                msg_class(msgtype), topic,
                                _writer_callback(writer, topic, msgtype),
                                matching_qos(node, topic), raw=True)
                            if progress:
                                print(f"recording {topic} [{msgtype}]", flush=True)
                    executor.spin_once(timeout_sec=0.05)
            except KeyboardInterrupt:
                pass
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return RecordResult(out=path, counts=dict(writer.counts),
                        never_seen=[t for t in topics if t not in subs],
                        skipped=sorted(writer.skipped), wall_s=time.monotonic() - t0)


def _writer_callback(writer: Any, topic: str, msgtype: str) -> Any:
    def callback(raw: bytes) -> None:
        writer.write(topic, msgtype, time.time_ns(), raw)

    return callback
