"""rclpy API that differs between the supported distributions (Humble's rclpy 3.x, Jazzy's 7.x,
Kilted's 9.x): one call here instead of a version check at each use.

test/node/test_rclpy_humble.py checks every rclpy name the project uses against Humble's sources.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ParamCheck = Callable[[list[Any]], Any]  # -> rcl_interfaces SetParametersResult
ParamApply = Callable[[list[Any]], None]


def add_parameter_callbacks(node: Any, check: ParamCheck, apply: ParamApply) -> None:
    """``check`` validates a parameter change (and may refuse it); ``apply`` takes it in once
    it is accepted. Iron and later: an on-set and a post-set callback. Humble has no post-set
    callbacks (and runs on-set callbacks newest first): one on-set callback checks, then applies
    what it accepted. ``apply`` reads the new values from its argument, not from the node."""
    if hasattr(node, "add_post_set_parameters_callback"):
        node.add_on_set_parameters_callback(check)
        node.add_post_set_parameters_callback(apply)
        return

    def check_then_apply(changed: list[Any]) -> Any:
        result = check(changed)
        if result.successful:
            apply(changed)
        return result

    node.add_on_set_parameters_callback(check_then_apply)


def publisher_count(node: Any, subscription: Any) -> int:
    """Publishers matched to ``subscription`` (Subscription.get_publisher_count is Iron and
    later); on Humble the publishers of its topic in the graph."""
    count = getattr(subscription, "get_publisher_count", None)
    if count is not None:
        return int(count())
    return int(node.count_publishers(subscription.topic_name))


def event_handler_module() -> Any:
    """rclpy's middleware-event module (SubscriptionEventCallbacks, UnsupportedEventTypeError):
    ``rclpy.event_handler`` from Iron on, ``rclpy.qos_event`` on Humble (same names)."""
    try:
        from rclpy import event_handler
    except ImportError:  # Humble
        from rclpy import qos_event as event_handler  # type: ignore[no-redef]
    return event_handler
