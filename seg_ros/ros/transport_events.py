"""What the middleware tells of an image subscription's traffic: samples lost in transport and
publishers offering QoS the subscription cannot match.

The image subscriptions live in an :class:`seg_ros.ros.intake.OwnThreadGroup` that no executor
runs, so event handlers made with them (rclpy's default incompatible-QoS warning included)
would never fire. :class:`TransportEvents` makes them in the node's default callback group
instead, where the executor services them, and destroys them before their subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seg_ros.ros.compat import event_handler_module


class TransportEvents:
    """``on_lost(n)`` for every ``n`` samples the middleware missed (best effort: gaps in the
    writer's sequence numbers), ``on_incompatible(policy)`` when a publisher's QoS cannot match
    (no sample of it will arrive). An event the middleware does not support is left out."""

    def __init__(self, node: Any, subscription: Any, on_lost: Callable[[int], None],
                 on_incompatible: Callable[[str], None]) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        self._node = node
        self.handlers: list[Any] = []
        events = event_handler_module()
        for kind, callback in (
                ("message_lost", lambda info: on_lost(int(info.total_count_change))),
                ("incompatible_qos", lambda info: on_incompatible(
                    qos_policy_name_from_kind(info.last_policy_kind)))):
            try:
                made = events.SubscriptionEventCallbacks(**{kind: callback},
                                                         use_default_callbacks=False)
                self.handlers += made.create_event_handlers(
                    node.default_callback_group, subscription.handle, subscription.topic_name)
            except events.UnsupportedEventTypeError as e:  # this rmw does not report it
                node.get_logger().debug(f"no {kind} events on {subscription.topic_name}: {e}")
        for handler in self.handlers:
            node.add_waitable(handler)

    def close(self) -> None:
        """Remove the handlers from the node (before their subscription is destroyed)."""
        for handler in self.handlers:
            self._node.remove_waitable(handler)
            handler.destroy()
        self.handlers = []
