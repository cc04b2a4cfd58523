"""Declaring the floor outputs' parameters (~/floor_grid, ~/floor_map) with one-line refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rclpy.exceptions import ParameterException

from seg_ros.errors import ConfigError
from seg_ros.ros.params import ParamSpec, descriptor


def declare(node: Any, specs: Sequence[ParamSpec], what: str) -> dict[str, Any]:
    """Declare ``specs`` on ``node``; their values by name. An override rclpy refuses (type,
    range) raises ConfigError naming ``what``, the parameter and the fix."""
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for spec in specs:
        default = spec.default
        if default is None:
            default = {"double": Parameter.Type.DOUBLE,
                       "double_array": Parameter.Type.DOUBLE_ARRAY,
                       "string_array": Parameter.Type.STRING_ARRAY}[spec.kind]
        try:
            values[spec.name] = node.declare_parameter(spec.name, default, descriptor(spec)).value
        except ParameterException as e:
            raise ConfigError(f"{what} parameter {spec.name}: {rclpy_reason(e, spec)}") from None
    return values


def rclpy_reason(e: Exception, spec: ParamSpec) -> str:
    """rclpy's refusal of a declared value, cut to its reason, plus the fix."""
    text = str(e.args[0] if e.args else e)
    text = text.split("Reason: ", 1)[-1].removesuffix(f": {spec.name}")
    if spec.float_range is not None:
        lo, hi = spec.float_range
        fix = f"set it to a number in {lo:g}..{hi:g}"
    elif spec.int_range is not None:
        fix = f"set it to an integer in {spec.int_range[0]}..{spec.int_range[1]}"
    elif spec.kind == "double_array":
        fix = "write floats, e.g. [0.0, 0.0, 1.2, 0.0, 0.1, 0.0],"
    else:
        fix = f"give a {spec.kind.replace('_', ' ')}"
    return f"{text}; {fix} in the params file or the -p override"
