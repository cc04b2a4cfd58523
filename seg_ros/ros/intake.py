"""Camera-image intake on a thread of its own: DDS -> mailbox without the rclpy executor.

rclpy's executors build a new wait set and walk every entity of the node in Python each time
they wake; for one 640x480 image that cost 3.1 ms from publish to callback here, against 1.3 ms
for a thread that keeps one wait set and takes the message itself (benchmarks/README.md). The
image subscription is therefore put in :class:`OwnThreadGroup`, a callback group executors
skip (their ``can_execute`` filter leaves it out of their wait sets), and an :class:`Intake`
thread waits on it alone and hands every message to the node's callback (the one-slot
mailbox). Everything else (camera_info, parameters, timers) stays on the executor.

Uses ``rclpy.impl.implementation_singleton.rclpy_implementation.WaitSet``, the wait set
``rclpy.wait_for_message`` uses (same signature from Humble to Kilted). Where it is missing the
node falls back to the executor (:func:`available`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rclpy.callback_groups import CallbackGroup

WAIT_NS = 100_000_000  # re-check the stop flag every 100 ms while no image arrives


def _wait_set_class() -> Any:
    try:
        from rclpy.impl.implementation_singleton import rclpy_implementation
    except ImportError:  # pragma: no cover - depends on the rclpy release
        return None
    return getattr(rclpy_implementation, "WaitSet", None)


def available() -> bool:
    """True when this rclpy offers the wait set the intake thread needs."""
    return _wait_set_class() is not None


class OwnThreadGroup(CallbackGroup):
    """A callback group no executor runs: its entities are serviced by an :class:`Intake`."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


class Intake:
    """Takes every message of ``subscription`` (created with an :class:`OwnThreadGroup`) on its
    own thread as soon as DDS has it and calls ``on_message(msg)`` there.

    ``on_message`` must be quick (hand the message over); the GIL is released while waiting.
    """

    def __init__(self, subscription: Any, context: Any,
                 on_message: Callable[[Any], None], on_error: Callable[[Exception], None],
                 name: str = "seg_ros_intake") -> None:
        self._sub = subscription
        self._context = context
        self._on_message = on_message
        self._on_error = on_error
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking messages (within one WAIT_NS) and join the thread."""
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        sub = self._sub
        wait_set = _wait_set_class()(1, 0, 0, 0, 0, 0, self._context.handle)
        while not self._stop.is_set() and self._context.ok():
            try:
                with sub.handle:
                    wait_set.clear_entities()
                    wait_set.add_subscription(sub.handle)
                    wait_set.wait(WAIT_NS)  # releases the GIL
                    if not wait_set.get_ready_entities("subscription"):
                        continue
                    # drain: with a history deeper than one, every message still reaches the
                    # mailbox and all but the newest are counted there as dropped
                    while (taken := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                        self._on_message(taken[0])
            except Exception as e:  # destroyed at shutdown, or a message rclpy cannot take
                if self._stop.is_set() or not self._context.ok():
                    return
                self._on_error(e)
