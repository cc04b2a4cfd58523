"""The segmentation node's parameter services: rclpy's declare and set, made to speak one line.

A mixin of SegmentationCore (seg_ros.ros.node): an integer for a double parameter is that double
(seg_ros.ros.param_types), every refusal (range, type, read-only, undeclared, a group's check)
is logged and counted (parameter_refusals, a WARN period), read-only refusals say "restart the
node", rclpy's numeric type names are named; the node group's own check and apply; a parameter
in the params file or -p that no group declares is a typo said at start with the closest name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException

from seg_ros.ros import param_types, params


class NodeParameters:
    """Mixin: the node's parameter services and its own group's check and apply."""

    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None,
                          ignore_override: bool = False) -> Any:
        """rclpy's, plus: an integer override of a double parameter is taken as that double
        (``-p max_rate_hz:=5``, ``overlay_alpha: 1``); any other type mismatch raises
        ParameterTypeError (one line; the node exits 2)."""
        if not ignore_override:
            param_types.fit_override(self, name, value)
        return super().declare_parameter(  # type: ignore[misc]
            name, value, descriptor, ignore_override)

    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """rclpy's (what ``ros2 param set`` and the SetParameters services call), plus: an
        integer for a double parameter is that double; every refusal (range, type,
        read-only, undeclared, our checks, the floor hook's) is logged and counted
        (parameter_refusals, a WARN period)."""
        try:
            parameter_list = param_types.integers_as_doubles(self, parameter_list)
            result = super().set_parameters_atomically(parameter_list)  # type: ignore[misc]
        except ParameterNotDeclaredException:
            name = next((p.name for p in parameter_list if p.name not in self._parameters), "?")
            near = params.closest_name(name, self._parameters)
            result = SetParametersResult(successful=False, reason=(
                f"{name} is not a parameter of this node{near}: check the name (ros2 param list)"))
        if result.reason.startswith("Trying to set a read-only parameter"):
            result.reason = params.restart_reason(result.reason.split(": ", 1)[-1].rstrip("."))
        result.reason = _readable_types(result.reason)
        if not result.successful:
            self.param_refusals += 1
            names = ", ".join(p.name for p in parameter_list)
            self.last_param_error = f"{names}: {result.reason}"
            self.get_logger().warning(f"refused parameter {self.last_param_error}",
                                      throttle_duration_sec=1.0)
        return result

    def _check_params(self, changed: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """The node group's check: before configure every value may change."""
        names = self.card.class_names if self.card is not None else ()
        configured = self.startup is not None
        for name, value in changed.items():
            reason = (params.check_update(name, value, names) if configured
                      else params.check_value(name, value))
            if reason:
                return reason
        return ""

    def _apply_params(self, changed: Mapping[str, Any]) -> None:
        self.live = params.live_from(changed, self.live)
        self.get_logger().info("set " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))
        if self.card is not None and "unknown_below" in changed:
            self.label_info.publish(self.card, self.engine.describe(), self.labels_encoding,
                                    self.live.unknown_below)  # the threshold is in LabelInfo

    def _warn_undeclared_overrides(self) -> None:
        """A parameter in the params file or -p that no part of the node declares is a typo
        (overlay_alfa) that rclpy would ignore without a word: say so, with the closest name."""
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        for name in sorted(set(overrides) - set(self._parameters)):
            if name.startswith(("qos_overrides.", "use_sim_time", "start_type_description")):
                continue
            self.get_logger().warning(
                f"parameter {name!r} is not a parameter of this node and is ignored"
                f"{params.closest_name(name, self._parameters)}: fix the name in the params file "
                "or the -p override (ros2 param list shows the names)")

    # node attributes this mixin uses (declared for type checkers)
    param_refusals: int
    last_param_error: str
    card: Any
    engine: Any
    startup: Any
    live: Any
    label_info: Any
    labels_encoding: str
    _parameters: dict[str, Any]
    get_logger: Any


def _readable_types(reason: str) -> str:
    """rclpy states parameter types as numbers ("expected '4' got '2'"): name them."""
    from rcl_interfaces.msg import ParameterType

    names = {str(v): k.removeprefix("PARAMETER_").lower() for k, v in vars(ParameterType).items()
             if k.startswith("PARAMETER_") and isinstance(v, int)}
    return re.sub(r"'(\d+)'", lambda m: f"'{names.get(m.group(1), m.group(1))}'", reason or "")
