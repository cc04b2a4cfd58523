"""A live segmentation node process plus a test-side rclpy client, for benches, soak, fuzz and
the live-node tests (test_node, test_floor_node, test_faults).

Both ends use :func:`seg_ros.ros.dds.local_env` in one private ROS domain (loopback discovery,
a shared-memory segment that fits whole images). The client spins its own executor in a
background thread; diagnostics of the node are kept as they arrive. The node process is
:class:`seg_ros.ros.process.NodeProcess` (``seg-ros bag eval`` starts its node with it too).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seg_ros.ros.dds import local_env, use_local_env
from seg_ros.ros.memory import keep_large_buffers
from seg_ros.ros.process import NodeProcess

__all__ = ["OUTPUTS", "Client", "NodeLauncher", "NodeProcess", "RawCounter", "param_args",
           "pick_domain", "rss_mb", "stamp_now", "wait_for"]

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("labels", "confidence", "color_mask", "overlay")


def pick_domain() -> int:
    return random.Random(os.getpid() ^ time.time_ns()).randint(101, 230)


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


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


def node_module() -> tuple[str, ...]:
    """The installed ``seg-ros`` script when there is one (its entry point is tested too)."""
    exe = Path(sys.executable).with_name("seg-ros")
    return (str(exe), "node") if exe.is_file() else ("-m", "seg_ros.cli", "node")


class NodeLauncher:
    """``seg-ros node --params-file PARAMS`` in a private ROS domain, as the live tests start
    it: as a :class:`NodeProcess`, or as a command line and environment for subprocess.run."""

    def __init__(self, domain: int, params_file: Path) -> None:
        self.domain, self.params_file = domain, params_file

    def command(self, *ros_args: str) -> list[str]:
        return [sys.executable, *node_module(), "--params-file", str(self.params_file),
                "--ros-args", *ros_args]

    def env(self) -> dict[str, str]:
        return {**local_env(self.domain), "PYTHONUNBUFFERED": "1"}

    def start(self, ros_args: list[str], log_path: Path) -> NodeProcess:
        return NodeProcess(ros_args, self.domain, module=node_module(),
                           args=("--params-file", str(self.params_file)), log_path=log_path)


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Client:
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

    def count_outputs(self, node: str, outputs: Sequence[str] = OUTPUTS) -> RawCounter:
        return RawCounter(self, node, outputs)

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
        client = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout):
                raise TimeoutError(f"{service} not available")
            future = client.call_async(request)
            wait_for(future.done, timeout, f"reply of {service}")
            return future.result()
        finally:
            self.node.destroy_client(client)


class RawCounter:
    """Subscribes a node's image outputs without deserialising them (raw CDR): per output, the
    header stamps (ns) received; per frame, when the last of its outputs arrived (monotonic).

    Each output is taken by its own seg_ros.ros.intake thread, not the client's executor: the
    executor's per-message Python would be CPU taken from the node under test."""

    def __init__(self, client: Client, node: str, outputs: Sequence[str]) -> None:
        import struct

        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from seg_ros.ros.intake import Intake, OwnThreadGroup

        self.client = client
        self.got: dict[str, set[int]] = {o: set() for o in outputs}
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
                self.got[o].add(s)
                k = self._partial.get(s, 0) + 1
                if k == n:
                    self._partial.pop(s, None)
                    self.done[s] = now
                    self._cond.notify_all()
                else:
                    self._partial[s] = k

        self.subs = [client.node.create_subscription(Image, f"{node}/{o}",
                                                     lambda m, o=o: on(o, m), qos, raw=True,
                                                     callback_group=OwnThreadGroup())
                     for o in outputs]
        self.intakes = [Intake(sub, client.ctx, sub.callback, self._error, name=f"count_{o}")
                        for sub, o in zip(self.subs, outputs)]
        for intake in self.intakes:
            intake.start()

    @staticmethod
    def _error(e: Exception) -> None:
        raise RuntimeError(f"could not take an output message: {e}") from e

    def stamps(self, output: str) -> set[int]:
        with self._cond:
            return set(self.got[output])

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
