"""A fault-injecting engine backend for node tests: ``backend:=fault_backend:FaultyEngine``.

Wraps the onnxruntime engine and raises on every ``infer`` while the file named by the
environment variable ``SEG_ROS_FAULT_FILE`` exists (a test creates it to start the fault and
deletes it to end it), and on calls number ``SEG_ROS_FAULT_FRAMES=N..M`` (1-based) if set.
Further faults, each by an environment variable: ``SEG_ROS_FAULT_LOAD_S`` seconds of model
loading (a TensorRT build), ``SEG_ROS_FAULT_HANG_S`` seconds inside every ``infer`` (a hung
engine), ``SEG_ROS_FAULT_FATAL_FILE``: while it exists ``infer`` raises a BaseException that
is not an Exception (what escapes the worker's per-frame handling and kills the thread).
The first call, the node's warm-up while it is configured, never faults.
Importable as ``fault_backend`` when ``test/`` is on PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.engines.onnxruntime import OnnxRuntimeEngine


class InjectedFault(RuntimeError):
    """The error the faulty engine raises."""


class WorkerDeath(BaseException):
    """Not an Exception: nothing in the worker's per-frame handling catches it."""


class FaultyEngine(OnnxRuntimeEngine):
    def __init__(self, path: Path, **kw: Any) -> None:
        if load_s := float(os.environ.get("SEG_ROS_FAULT_LOAD_S", "0")):
            print(f"fault backend: loading the model for {load_s} s", flush=True)
            time.sleep(load_s)
        super().__init__(path, **kw)
        self._hang_s = float(os.environ.get("SEG_ROS_FAULT_HANG_S", "0"))
        self._fatal = os.environ.get("SEG_ROS_FAULT_FATAL_FILE")
        self.calls = 0
        self._file = os.environ.get("SEG_ROS_FAULT_FILE")
        lo, _, hi = os.environ.get("SEG_ROS_FAULT_FRAMES", "").partition("..")
        self._frames = (int(lo), int(hi or lo)) if lo else None

    def infer(self, batch: np.ndarray, outputs: list[str] | None = None
              ) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.calls == 1:  # the node's warm-up at configure
            return super().infer(batch, outputs)
        if self._fatal and os.path.exists(self._fatal):
            raise WorkerDeath("injected worker death")
        time.sleep(self._hang_s)
        if self._file and os.path.exists(self._file):
            raise InjectedFault(f"injected engine fault (while {self._file} exists)")
        if self._frames and self._frames[0] <= self.calls <= self._frames[1]:
            raise InjectedFault(f"injected engine fault on call {self.calls}")
        return super().infer(batch, outputs)

    def describe(self) -> str:
        return "fault-injecting " + super().describe()
