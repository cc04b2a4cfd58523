"""rclpy plumbing shared by play, record and evaluate: a private context/node, message classes
by type name, QoS that matches what publishers offer, and a rosbags writer for raw messages."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seg_ros.bag import STORAGES, BagError, commit, discard, staging, typestore
from seg_ros.ros.dds import LOCALHOST_PROFILE

# Every process talks over Fast DDS's large-data transport (default UDP drops big images).
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST":
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(LOCALHOST_PROFILE))


def msg_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        raise BagError(
            f"message type {msgtype} is not importable in this Python: source the ROS workspace "
            f"that provides {pkg} (or pip install its wheel)"
        ) from None


@contextmanager
def ros_node(name: str, domain_id: int | None = None) -> Iterator[tuple[Any, Any]]:
    """(node, executor) in a private rclpy context, shut down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    kw = {} if domain_id is None else {"domain_id": int(domain_id)}
    rclpy.init(args=[], context=ctx, **kw)
    node = None
    try:
        node = rclpy.create_node(name, context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        yield node, executor
    finally:
        if node is not None:
            node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)


def qos(reliable: bool = True, depth: int = 10, transient_local: bool = False) -> Any:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if transient_local
                    else DurabilityPolicy.VOLATILE),
    )


def matching_qos(node: Any, topic: str, depth: int = 100) -> Any:
    """A subscription QoS every current publisher of ``topic`` is compatible with (reliable and
    transient-local only when all publishers offer them), as ``ros2 bag record`` does."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(
        i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(
        i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return qos(reliable, depth, latched)


def spin_for(executor: Any, seconds: float) -> None:
    """Run callbacks for ``seconds`` (at least one spin)."""
    end = time.monotonic() + seconds
    while True:
        executor.spin_once(timeout_sec=max(0.0, min(0.05, end - time.monotonic())))
        if time.monotonic() >= end:
            return


class RawBagWriter:
    """Raw CDR messages -> a rosbag2 written atomically (``.NAME.partial`` until :meth:`close`).

    Connections are added on first use of a topic. Types unknown to the Kilted typestore are
    skipped (listed in :attr:`skipped`) since the bag could not describe them.
    """

    def __init__(self, out: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"--storage {storage!r} is not one of {', '.join(STORAGES)}")
        self.out = Path(out)
        self._staged = staging(self.out)
        self._writer = Writer(self._staged, version=9,
                              storage_plugin=StoragePlugin[storage.upper()])
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.skipped: set[str] = set()
        self.closed = False

    def write(self, topic: str, msgtype: str, t_ns: int, raw: bytes) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            ts = typestore()
            if msgtype not in ts.types:
                self.skipped.add(f"{topic} [{msgtype}]")
                return
            conn = self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=ts)
        self._writer.write(conn, t_ns, raw)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> Path:
        """Finish the bag and move it to ``out``."""
        try:
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        commit(self._staged, self.out)
        self.closed = True
        return self.out

    def abort(self) -> None:
        """Drop the half-written bag."""
        if not self.closed:
            with contextlib.suppress(Exception):  # the bag is discarded anyway
                self._writer.close()
            discard(self._staged)
            self.closed = True
