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

from seg_ros.bag import (
    STORAGES,
    BagError,
    commit,
    discard,
    register_installed,
    staging,
    typestore,
)
from seg_ros.ros.dds import LOCALHOST_PROFILE, PROFILE_VARS, profile_vars

# Every process talks over Fast DDS's large-data transport (default UDP drops big images); on
# loopback-only discovery the shared-memory profile, under the variable name of each Fast DDS
# (2.x FASTRTPS_, 3.x FASTDDS_): one that is set already names the profile for the other.
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
if (os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
        or os.environ.get("ROS_LOCALHOST_ONLY") == "1"):
    _profile = next((os.environ[v] for v in PROFILE_VARS if os.environ.get(v)),
                    str(LOCALHOST_PROFILE))
    for _var in profile_vars():
        os.environ.setdefault(_var, _profile)


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
    kw: dict[str, Any] = {} if domain_id is None else {"domain_id": int(domain_id)}
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


def offered_qos(node: Any, topic: str) -> list[Any]:
    """The QoS profiles the current publishers of ``topic`` offer, as rosbags ``Qos`` records:
    what ``ros2 bag record`` writes to metadata.yaml so ``ros2 bag play`` can offer them again
    (a latched topic is re-published transient-local)."""
    return [_rosbags_qos(info.qos_profile) for info in node.get_publishers_info_by_topic(topic)]


def _rosbags_qos(profile: Any) -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    def span(duration: Any) -> Any:
        return QosTime(*divmod(int(duration.nanoseconds), 1_000_000_000))

    return Qos(history=QosHistory[profile.history.name], depth=int(profile.depth),
               reliability=QosReliability[profile.reliability.name],
               durability=QosDurability[profile.durability.name],
               deadline=span(profile.deadline), lifespan=span(profile.lifespan),
               liveliness=QosLiveliness[profile.liveliness.name],
               liveliness_lease_duration=span(profile.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


def replay_qos(offered: list[Any], depth: int = 100) -> Any:
    """Publisher QoS for replaying a topic recorded with ``offered`` profiles: transient-local
    when every recorded publisher was, keeping as many messages for late joiners as the deepest
    of them did; else volatile, ``depth`` deep. Always reliable: a reliable writer matches
    reliable and best-effort subscribers alike."""
    from rosbags.interfaces import QosDurability

    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                    for q in offered)
    if latched:
        return qos(True, max(1, *(q.depth for q in offered)), transient_local=True)
    return qos(True, depth)


def is_latched(node: Any, topic: str) -> bool:
    """Every current publisher of ``topic`` offers transient-local durability."""
    from rclpy.qos import DurabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    return bool(infos) and all(
        i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)


def matching_qos(node: Any, topic: str, depth: int = 100) -> Any:
    """A subscription QoS every current publisher of ``topic`` is compatible with (reliable and
    transient-local only when all publishers offer them), as ``ros2 bag record`` does."""
    from rclpy.qos import ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(
        i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    return qos(reliable, depth, is_latched(node, topic))


def spin_for(executor: Any, seconds: float) -> None:
    """Run callbacks for ``seconds`` (at least one spin)."""
    end = time.monotonic() + seconds
    while True:
        executor.spin_once(timeout_sec=max(0.0, min(0.05, end - time.monotonic())))
        if time.monotonic() >= end:
            return


class RawBagWriter:
    """Raw CDR messages -> a rosbag2 written atomically (``.NAME.partial`` until :meth:`close`).

    Connections are added by :meth:`declare` (with the QoS profiles the recorded publishers
    offered, written to metadata.yaml) or on first use of a topic. Types unknown to the
    typestore (Kilted + seg_ros's interface) are learnt from the local ROS install's .msg files
    (:func:`seg_ros.bag.register_installed`); those it lacks too are skipped (listed in
    :attr:`skipped`) since the bag could not describe them.
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

    def declare(self, topic: str, msgtype: str, offered_qos: list[Any] | None = None) -> bool:
        """Add ``topic`` with the publishers' ``offered_qos`` (rosbags ``Qos``) unless it is
        there already; False when its type is unknown (the topic is then skipped)."""
        if topic in self._conns:
            return True
        ts = typestore()
        if msgtype not in ts.types and not register_installed(msgtype):
            self.skipped.add(f"{topic} [{msgtype}]")
            return False
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=ts, offered_qos_profiles=offered_qos or ())
        return True

    def write(self, topic: str, msgtype: str, t_ns: int, raw: bytes) -> None:
        if topic not in self._conns and not self.declare(topic, msgtype):
            return
        self._writer.write(self._conns[topic], t_ns, raw)
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
