"""``seg-ros node`` as a child process in a private ROS domain.

One starter for everything that drives a real node over real topics: ``seg-ros bag eval``'s
driver, the benchmarks, the soak and every live-node test. Importing it does not import rclpy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from seg_ros.pipeline import NODE_NAME
from seg_ros.ros.dds import local_env

DEFAULT_NAME = NODE_NAME


class NodeProcess:
    """A node process whose environment is :func:`seg_ros.ros.dds.local_env` for ``domain``
    (images travel whole, on loopback) and whose output goes to a log file, not the caller's
    terminal.

    Args:
        ros_args: what follows ``--ros-args`` (parameters, remaps).
        name: node name; other than the default it is remapped with ``-r __node:=name``
            (unless ``module`` runs something other than ``... node``).
        module: Python arguments that run the node (after the interpreter).
        env: extra environment variables, over the local DDS ones.
        args: command-line arguments before ``--ros-args`` (e.g. ``--params-file``).
        log_path: where stdout and stderr go; default a new temp file named after the node.
        new_session: start the child in a session of its own, so a terminal's Ctrl-C reaches
            only the caller, which then stops the node itself (see :meth:`stop`).
    """

    def __init__(self, ros_args: Sequence[str], domain: int, name: str = DEFAULT_NAME,
                 module: Sequence[str] = ("-m", "seg_ros.cli", "node"),
                 env: dict[str, str] | None = None, *, args: Sequence[str] = (),
                 log_path: Path | None = None, new_session: bool = False) -> None:
        self.name = name
        self.log_path = log_path if log_path is not None else Path(
            tempfile.mkstemp(prefix=f"{name}_", suffix=".log")[1])
        cmd = [sys.executable, *module, *args, "--ros-args", *ros_args]
        if name != DEFAULT_NAME and module[-1] == "node":
            cmd += ["-r", f"__node:={name}"]
        self.args = cmd
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env={**local_env(domain), "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=new_session)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """The whole log so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 15) -> str:
        """The log's last ``n`` lines, for error messages ("" when it cannot be read)."""
        try:
            lines = self.log().strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT (the node shuts down cleanly), then kill after ``timeout`` s; the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


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
    """Resident set size of process ``pid`` in MB (Linux /proc); NaN when it has none."""
    status = Path(f"/proc/{pid}/status")
    if not os.path.exists(status):
        return float("nan")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")
