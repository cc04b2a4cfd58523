"""Polling with a deadline, for conditions another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(pred: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    """``pred()``'s first truthy value, polled every ``poll`` s; TimeoutError naming ``what``
    after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
