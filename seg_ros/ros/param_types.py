"""Parameter types as users write them: a whole number where a decimal is declared is that
decimal; any other type mismatch is one line naming the parameter, the types and the fix.

rclpy types a parameter by its default and refuses an override or a set of another type with
an exception (a traceback at start). ROS parses ``-p max_rate_hz:=5``, ``overlay_alpha: 1`` in
a params file and ``ros2 param set ... overlay_alpha 1`` as integers, so every double (and
double array) parameter takes an integer (array) converted to it: at declaration
(:func:`fit_override`, the overrides of the command line and params files) and when set
(:func:`integers_as_doubles`, ``ros2 param set`` and the SetParameters services). The declared
type stays double, as tools (rqt_reconfigure, ``ros2 param describe``) expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seg_ros.errors import ParameterTypeError

_EXAMPLES = {"DOUBLE": "0.5", "INTEGER": "1", "BOOL": "true", "STRING": "text",
             "DOUBLE_ARRAY": "[0.0, 1.5]", "INTEGER_ARRAY": "[1, 2]",
             "STRING_ARRAY": "[a, b]", "BOOL_ARRAY": "[true, false]"}


def _type_of(value: Any) -> Any:
    from rclpy.parameter import Parameter

    return value if isinstance(value, Parameter.Type) else Parameter.Type.from_parameter_value(
        value)


def _name(t: Any) -> str:
    return t.name.lower().replace("_", " ")


def _as_declared(value: Any, declared: Any) -> Any:
    """``value`` converted to the ``declared`` Parameter.Type when it is an integer (array)
    for a double (array); None when it does not need or allow it."""
    from rclpy.parameter import Parameter

    t = _type_of(value)
    if declared == Parameter.Type.DOUBLE and t == Parameter.Type.INTEGER:
        return float(value)
    if declared == Parameter.Type.DOUBLE_ARRAY and t == Parameter.Type.INTEGER_ARRAY:
        return [float(v) for v in value]
    return None


def fit_override(node: Any, name: str, default: Any) -> None:
    """Before ``name`` is declared with ``default`` (a value or a Parameter.Type): an integer
    override of a double is replaced by the double; any other override of another type raises
    ParameterTypeError (one line: the parameter, both types, how to write it)."""
    from rclpy.parameter import Parameter

    override = getattr(node, "_parameter_overrides", {}).get(name)
    if override is None or default is None or override.type_ == Parameter.Type.NOT_SET:
        return
    declared = _type_of(default)
    if declared == Parameter.Type.NOT_SET or override.type_ == declared:
        return
    fitted = _as_declared(override.value, declared)
    if fitted is not None:
        node._parameter_overrides[name] = Parameter(name, declared, fitted)
        return
    example = _EXAMPLES.get(declared.name, "") if isinstance(default, Parameter.Type) or (
        default in ("", [])) else _yaml(default)
    raise ParameterTypeError(
        f"parameter {name} is given {_name(override.type_)} {override.value!r} but is "
        f"{'a' if declared.name[0] not in 'AEIOU' else 'an'} {_name(declared)}: write e.g. "
        f"-p {name}:={example} or '{name}: {example}' in the params file")


def _yaml(value: Any) -> str:
    """A default as one would write it on the command line or in YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def integers_as_doubles(node: Any, parameters: Sequence[Any]) -> list[Any]:
    """``parameters`` (being set) with integer values of declared double (array) parameters
    converted; the rest as they are (rclpy refuses them, naming the types)."""
    from rclpy.parameter import Parameter

    out = []
    for p in parameters:
        declared = None
        if node.has_parameter(p.name):
            declared = Parameter.Type(node.describe_parameter(p.name).type)
        fitted = None if declared is None else _as_declared(p.value, declared)
        out.append(p if fitted is None else Parameter(p.name, declared, fitted))
    return out
