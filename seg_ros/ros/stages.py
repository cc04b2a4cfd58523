"""Output stages of a frame, each isolated: one stage's failure costs only its own output.

After the engine a frame fans out into stages (labels, floor grid, depth points, confidence,
class mask, colour mask, overlay, camera_info). An exception in one of them (a bug, a value no
check foresaw) is caught here: counted per stage (``output_stage_failures`` in /diagnostics),
remembered as one line naming the stage, the error and where it was raised, logged (the full
traceback once per stage, for the bug report; then one throttled line), and WARN in
/diagnostics for the period; the frame's other stages still publish. A stage of a worker that
was stopped (deactivated, shutting down) is skipped, so a worker that outlived its activation
never publishes.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seg_ros.errors import SegRosError

LOG_THROTTLE_S = 5.0


def failure_cause(e: BaseException) -> str:
    """One line for an error in an output stage: our own errors' message as it is; any other
    as its type, where it was raised (file:line, function) and its text, plus what to do."""
    text = " ".join(str(e).split()) or "(no message)"
    if isinstance(e, SegRosError):
        return text
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name}" if tb else ""
    return (f"internal error {type(e).__name__}{where}: {text} (a bug: report it with the "
            "node's log, which has the traceback)")


class OutputStages:
    """Runs a frame's output stages (on the worker threads); their failure counts."""

    def __init__(self, logger: Any, note_error: Callable[[str], None],
                 stopped: Callable[[], bool]) -> None:
        self._log = logger
        self._note_error = note_error
        self._stopped = stopped
        self._lock = threading.Lock()
        self.failed: dict[str, int] = {}   # stage -> frames whose stage failed, since start
        self.skipped_stopped = 0           # stages not run because their worker was stopped
        self.last_cause = ""               # "<stage> output failed: <cause>"
        self._seen = 0                     # sum(failed) at the last health() call

    def run(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` as stage ``name``: skipped when this worker was stopped; a failure is
        counted and logged, and the caller goes on with the next stage."""
        if self._stopped():
            self.skipped_stopped += 1
            return
        try:
            fn(*args)
        except Exception as e:  # one stage's failure must not cost the others their frame
            if self._stopped():
                return
            self._failed(name, e)

    def _failed(self, name: str, e: Exception) -> None:
        cause = failure_cause(e)
        with self._lock:
            first = name not in self.failed
            self.failed[name] = self.failed.get(name, 0) + 1
            n = self.failed[name]
        self.last_cause = f"{name} output failed: {cause}"
        self._note_error(self.last_cause)
        line = (f"{self.last_cause} ({n} frame(s) so far; the frame's other outputs were "
                "published)")
        if first and not isinstance(e, SegRosError):
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            self._log.error(f"{line}\n{tb.rstrip()}")
        else:
            self._log.error(line, throttle_duration_sec=LOG_THROTTLE_S)

    def health(self) -> str:
        """WARN text when some stage failed since the last call ("" otherwise)."""
        total = sum(self.failed.values())
        new, self._seen = total - self._seen, total
        if new <= 0:
            return ""
        return f"{self.last_cause} ({new} this period; the other outputs went out)"

    def diagnostics_values(self) -> dict[str, str]:
        return {"output_stage_failures": ", ".join(f"{k}={v}" for k, v in
                                                   sorted(self.failed.items()))}
