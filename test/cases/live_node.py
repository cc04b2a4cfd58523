"""The one live-node set-up of the test modules: a node process yielded once it is ready, then
stopped with SIGINT, which it must answer with exit code 0 (a clean shutdown)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from seg_ros.live import LiveClient, NodeProcess


@contextmanager
def running(client: LiveClient, node: str, proc: NodeProcess, inputs: Sequence[Any],
            outputs: Sequence[str], timeout: float = 60.0) -> Iterator[NodeProcess]:
    """``proc`` (already started) once ``node`` (its fully qualified name) subscribes every
    publisher of ``inputs`` and publishes ``outputs``; stopped when the block ends, however it
    ends. A block that ended without an error also requires the exit code 0: nodes started with
    ``with running(...) as a, running(...) as b`` are each stopped even when a later one fails
    to start."""
    try:
        for pub in inputs:
            client.wait_ready(proc, pub, node, outputs, timeout)
        yield proc
    finally:
        rc = proc.stop()
    assert rc == 0, f"{node} did not shut down cleanly on SIGINT ({rc}):\n{proc.tail(40)}"
