"""The test side of a live node: an rclpy client in its own context, with a spin thread,
publishers, raw output counters keyed by header stamp, the node's diagnostics, readiness,
parameter and service calls.

The client uses :func:`seg_ros.ros.dds.local_env` in the node's private ROS domain (loopback
discovery, a shared-memory segment that fits whole images). rclpy is imported when a client is
made, not when this module is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from seg_ros.live.process import NodeProcess
from seg_ros.live.wait import wait_for
from seg_ros.pipeline import OUTPUTS  # the node's image outputs, by name
from seg_ros.ros.dds import use_local_env
from seg_ros.ros.memory import keep_large_buffers
from seg_ros.stamps import stamp_ns


def param_args(values: dict[str, Any]) -> list[str]:
    """{"threads": 1, ...} -> ["-p", "threads:=1", ...] (what follows --ros-args)."""
    return [a for k, v in values.items() for a in ("-p", f"{k}:={v}")]


def stamp_now(msg: Any, frame_id: str) -> int:
    """Give ``msg`` a fresh header stamped with the wall clock now; the stamp in ns (the key
    the output counters match frames by)."""
    from std_msgs.msg import Header

    ns = time.time_ns()
    msg.header = Header(frame_id=frame_id)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
    return ns


def ask(pub: Any, msg: Any, counter: Any, timeout: float, frame_id: str = "camera"
        ) -> float | None:
    """Stamp ``msg`` now, publish it and wait for its outputs on ``counter`` (a RawCounter or
    Collector); ms from publishing to the last output, None when not within ``timeout`` s."""
    stamp = stamp_now(msg, frame_id)
    t0 = time.monotonic()
    pub.publish(msg)
    done = counter.wait(stamp, timeout)
    return None if done is None else (done - t0) * 1e3


def stream(pub: Any, msgs: Sequence[Any], hz: float, seconds: float, frame_id: str = "camera",
           on_tick: Callable[[float], None] | None = None) -> dict[int, float]:
    """Publish ``msgs`` round-robin at ``hz`` for ``seconds``, each stamped as it goes out
    (``on_tick(elapsed s)`` after each); stamp (ns) -> publish time (monotonic)."""
    sent: dict[int, float] = {}
    t0, k = time.monotonic(), 0
    while (now := time.monotonic()) - t0 < seconds:
        msg = msgs[k % len(msgs)]
        sent[stamp_now(msg, frame_id)] = time.monotonic()
        pub.publish(msg)
        k += 1
        if on_tick is not None:
            on_tick(now - t0)
        time.sleep(max(0.0, t0 + k / hz - time.monotonic()))
    return sent


class LiveClient:
    """Test-side rclpy node in its own context: publishers by topic, raw output counters,
    diagnostics by node, service and parameter calls. ``name``: the client node's name
    (default ``seg_client_<pid>``)."""

    def __init__(self, domain: int, name: str | None = None) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        use_local_env(domain)
        keep_large_buffers()  # the client is a camera driver, not the node under test
        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node(name or f"seg_client_{os.getpid()}", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.diag: dict[str, tuple[float, int, str, dict[str, str]]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.ctx.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shut down under us
                return

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.ctx)
        self._thread.join(2)

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            level = st.level if isinstance(st.level, int) else int.from_bytes(st.level, "little")
            with self.lock:
                self.diag[st.hardware_id] = (time.monotonic(), level, st.message,
                                             {kv.key: kv.value for kv in st.values})

    def diagnostics(self, node: str, after: float | None = None, timeout: float = 5.0
                    ) -> tuple[int, str, dict[str, str]]:
        """(level, message, values) of ``node``'s first /diagnostics after ``after``."""
        after = time.monotonic() if after is None else after
        got = wait_for(lambda: self.diag.get(node) if node in self.diag
                       and self.diag[node][0] > after else None, timeout, f"diagnostics of {node}")
        return got[1], got[2], got[3]

    def publisher(self, msg_type: Any, topic: str, depth: int = 10, reliable: bool = True) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=depth,
                                                                      reliability=rel))

    def wait_ready(self, proc: NodeProcess, pub: Any, node: str,
                   outputs: Sequence[str] = OUTPUTS, timeout: float = 60.0) -> None:
        """Until ``proc``'s node subscribes ``pub``'s topic and publishes every one of
        ``outputs`` (names under ``node``); RuntimeError with the log's tail when the process
        exits first, TimeoutError after ``timeout`` s."""

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{node} exited with code {proc.proc.returncode} before it "
                                   f"was ready (log {proc.log_path}):\n{proc.tail()}")
            return pub.get_subscription_count() > 0 and all(
                self.node.count_publishers(f"{node}/{o}") > 0 for o in outputs)

        wait_for(ready, timeout, f"{node} to subscribe its input and publish {list(outputs)}")

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count_outputs(self, node: str, outputs: Sequence[str] = OUTPUTS) -> RawCounter:
        """Raw counters of ``node``'s image ``outputs`` (stamps and arrival times, no copies)."""
        return RawCounter(self, node, outputs)

    def collect(self, node: str, outputs: Sequence[str] = OUTPUTS,
                types: dict[str, Any] | None = None) -> Collector:
        """A :class:`Collector` of ``node``'s ``outputs`` (deserialised messages by stamp)."""
        return Collector(self, node, outputs, types)

    def set_params(self, node: str, **values: Any) -> list[Any]:
        """Set ``values`` on ``node`` (one SetParameters call); a SetParametersResult each."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(node + "/set_parameters", SetParameters, req).results

    def call(self, service: str, srv_type: Any, request: Any, timeout: float = 10.0) -> Any:
        """Call ``service`` once and wait for its reply (TimeoutError when either takes over
        ``timeout`` s), with a service client made for the call and destroyed after."""
        client: Any = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout):
                raise TimeoutError(f"{service} not available")
            future = client.call_async(request)
            wait_for(future.done, timeout, f"reply of {service}")
            return future.result()
        finally:
            self.node.destroy_client(client)


class RawCounter:
    """Subscribes a node's image outputs without deserialising them (raw CDR): per output, when
    each header stamp (ns) arrived; per frame, when the last of its outputs arrived (monotonic).

    Each output is taken by its own seg_ros.ros.intake thread, not the client's executor: the
    executor's per-message Python would be CPU taken from the node under test."""

    def __init__(self, client: LiveClient, node: str, outputs: Sequence[str]) -> None:
        import struct

        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from seg_ros.ros.intake import Intake, OwnThreadGroup

        self.client = client
        self.got: dict[str, dict[int, float]] = {o: {} for o in outputs}  # stamp -> arrival
        self._partial: dict[int, int] = {}
        self.done: dict[int, float] = {}  # stamp -> time the last output arrived
        self._cond = threading.Condition(client.lock)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        n = len(outputs)

        def on(o: str, raw: bytes) -> None:
            sec, nsec = struct.unpack_from("<iI", raw, 4)  # CDR: encapsulation, header.stamp
            s = sec * 10**9 + nsec
            now = time.monotonic()
            with self._cond:
                if s in self.got[o]:
                    return
                self.got[o][s] = now
                k = self._partial.get(s, 0) + 1
                if k == n:
                    self._partial.pop(s, None)
                    self.done[s] = now
                    self._cond.notify_all()
                else:
                    self._partial[s] = k

        def on_output(o: str) -> Callable[[Any], None]:  # typed: Jazzy's rclpy is generic
            return lambda raw: on(o, raw)

        self.subs = [client.node.create_subscription(Image, f"{node}/{o}", on_output(o), qos,
                                                     raw=True, callback_group=OwnThreadGroup())
                     for o in outputs]
        self.intakes = [Intake(sub, client.ctx, cast(Any, sub.callback), self._error,
                               name=f"count_{o}")
                        for sub, o in zip(self.subs, outputs)]
        for intake in self.intakes:
            intake.start()

    @staticmethod
    def _error(e: Exception) -> None:
        raise RuntimeError(f"could not take an output message: {e}") from e

    def stamps(self, output: str) -> set[int]:
        with self._cond:
            return set(self.got[output])

    def arrival(self, output: str, stamp: int) -> float | None:
        """When ``output`` of frame ``stamp`` arrived (monotonic), None if it did not."""
        with self._cond:
            return self.got[output].get(stamp)

    def complete(self) -> list[tuple[int, float]]:
        """(stamp, time the last of its outputs arrived) for frames with every output."""
        with self._cond:
            return sorted(self.done.items())

    def wait(self, stamp: int, timeout: float) -> float | None:
        """When every output of ``stamp`` had arrived (monotonic), or None after ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while stamp not in self.done:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.done[stamp]

    def close(self) -> None:
        for intake in self.intakes:
            intake.close()
        for sub in self.subs:
            self.client.node.destroy_subscription(sub)


def stamp_of(msg: Any) -> int:
    """:func:`seg_ros.stamps.stamp_ns` of a message's header, or of a Header itself."""
    return stamp_ns(getattr(msg, "header", msg))


class Collector:
    """Subscribes a node's outputs (deserialised, on the client's executor, reliable) and keeps
    the first message per (output, stamp) in ``got``; ``arrivals``: (monotonic time, stamp) of
    each first output named in ``outputs``. Images unless ``types`` names another message type
    for an output (e.g. ``{"floor_grid": OccupancyGrid}``)."""

    def __init__(self, client: LiveClient, node: str, outputs: Sequence[str],
                 types: dict[str, Any] | None = None, depth: int = 10) -> None:
        self.client, self.node_name = client, node
        self.outputs: tuple[str, ...] = ()
        self.got: dict[str, dict[int, Any]] = {}
        self.times: dict[str, dict[int, float]] = {}  # monotonic arrival
        self.arrivals: list[tuple[float, int]] = []
        self.subs: list[Any] = []
        self._depth = depth
        for o in outputs:
            self.add(o, (types or {}).get(o))

    def add(self, output: str, msg_type: Any = None) -> Any:
        """Subscribe one more output (an Image unless ``msg_type``); the subscription."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        with self.client.lock:
            self.outputs += (output,)
            self.got.setdefault(output, {})
            self.times.setdefault(output, {})
        sub = self.client.node.create_subscription(
            msg_type or Image, f"{self.node_name}/{output}", lambda m: self._on(output, m),
            QoSProfile(depth=self._depth, reliability=ReliabilityPolicy.RELIABLE))
        self.subs.append(sub)
        return sub

    def _on(self, output: str, msg: Any) -> None:
        s, now = stamp_ns(msg.header), time.monotonic()
        with self.client.lock:
            if s in self.got[output]:
                return
            self.got[output][s], self.times[output][s] = msg, now
            if output == self.outputs[0]:
                self.arrivals.append((now, s))

    def arrival(self, output: str, stamp: int) -> float | None:
        """When ``output`` of frame ``stamp`` arrived (monotonic), None if it did not."""
        with self.client.lock:
            return self.times[output].get(stamp)

    def wait(self, stamp: int, timeout: float) -> float | None:
        """When the last output of ``stamp`` arrived (monotonic), or None after ``timeout``."""
        def last() -> float | None:
            with self.client.lock:
                times = [self.times[o].get(stamp) for o in self.outputs]
            return None if None in times else max(t for t in times if t is not None)

        try:
            return wait_for(last, timeout, "outputs", poll=0.0005)
        except TimeoutError:
            return None

    def request(self, publish: Callable[[Any], None], header: Any, timeout: float = 15.0,
                outputs: Sequence[str] | None = None, expect: bool = True) -> dict[str, Any]:
        """``publish(header)`` every 0.5 s (until discovery settles) until every output in
        ``outputs`` (default all) has ``header``'s stamp; the messages by output name. With
        ``expect=False`` it publishes for ``timeout`` s and returns whatever came."""
        s, wanted = stamp_ns(header), tuple(outputs or self.outputs)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            publish(header)
            t_next = time.monotonic() + 0.5
            while time.monotonic() < t_next:
                with self.client.lock:
                    if expect and all(s in self.got[o] for o in wanted):
                        return {o: self.got[o][s] for o in wanted}
                time.sleep(0.01)
        with self.client.lock:
            found = {o: self.got[o][s] for o in wanted if s in self.got[o]}
        if expect:
            missing = [o for o in wanted if o not in found]
            raise AssertionError(f"{self.node_name} published no {missing} for the frame")
        return found

    def close(self) -> None:
        for sub in self.subs:
            self.client.node.destroy_subscription(sub)
        self.subs = []


def in_domain(domain: int, make: Callable[[], Any]) -> Iterator[Any]:
    """``make()`` built and yielded with ``ROS_DOMAIN_ID`` set to ``domain`` in this process,
    then closed and the variable restored: the body of a pytest fixture for a test harness."""
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    try:
        harness = make()
        yield harness
        harness.close()
    finally:
        if old is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old
