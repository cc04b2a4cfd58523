"""One parameter group type for every part of the node, and the one on-set callback.

A :class:`ParamGroup` is a titled table of :class:`~seg_ros.ros.params.ParamSpec` owned by one
part of the node (the node itself, the depth input, an output): it declares its specs (a value
rclpy refuses is one line naming the group, the parameter and the fix), validates a change
against the group's other current values, and hands an accepted change to its owner. The node
builds every group when it is built (seg_ros.ros.outputs.param_groups: also the source of
docs/parameters.md) and registers one :class:`ParamBoard`, whose on-set callback dispatches each
changed parameter to the group that owns its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seg_ros.errors import ConfigError
from seg_ros.ros.params import ParamSpec, descriptor

Check = Callable[[Mapping[str, Any], Mapping[str, Any]], str]  # (changed, all values) -> why
Apply = Callable[[Mapping[str, Any]], None]  # the accepted change


@dataclass
class ParamGroup:
    """``prefix``: what the names have in common, for the reference ("" for mixed names);
    ``what``: how refusals name the group ("" keeps rclpy's own error, the node's group);
    ``when``: under which configuration the group means something (the reference says it)."""

    key: str
    title: str
    specs: tuple[ParamSpec, ...]
    prefix: str = ""
    what: str = ""
    when: str = "always"
    values: dict[str, Any] = field(default_factory=dict)
    check: Check | None = None
    appliers: list[Apply] = field(default_factory=list)

    def owns(self, name: str) -> bool:
        return any(s.name == name for s in self.specs)

    def declare(self, node: Any, managed: bool = False) -> dict[str, Any]:
        """Declare the specs on ``node`` (params file / -p values, else defaults); the values
        by name. A value rclpy refuses (type, range) raises ConfigError naming the fix."""
        from rclpy.exceptions import ParameterException, ParameterUninitializedException
        from rclpy.parameter import Parameter

        unset = {"double": Parameter.Type.DOUBLE, "double_array": Parameter.Type.DOUBLE_ARRAY,
                 "string_array": Parameter.Type.STRING_ARRAY}
        for spec in self.specs:
            default = unset[spec.kind] if spec.default is None else spec.default
            try:
                param = node.declare_parameter(spec.name, default, descriptor(spec, managed))
            except ParameterException as e:
                if not self.what:
                    raise
                raise ConfigError(f"{self.what} parameter {spec.name}: "
                                  f"{rclpy_reason(e, spec)}") from None
            try:
                self.values[spec.name] = param.value
            except ParameterUninitializedException:  # pragma: no cover - rclpy version
                self.values[spec.name] = None
        return self.values

    def refusal(self, changed: Mapping[str, Any]) -> str:
        """Why this change of the group's parameters is refused ("" = accept it)."""
        if self.check is None:
            return ""
        return self.check(changed, {**self.values, **changed})

    def apply(self, changed: Mapping[str, Any]) -> None:
        self.values = {**self.values, **changed}  # one reference swap: readers see old or new
        for fn in self.appliers:
            fn(changed)


class ParamBoard:
    """Every group of one node; the node's one on-set (check) and post-set (apply) callback."""

    def __init__(self, groups: Sequence[ParamGroup]) -> None:
        self.groups = tuple(groups)
        self.by_key = {g.key: g for g in self.groups}

    def __getitem__(self, key: str) -> ParamGroup:
        return self.by_key[key]

    def declare(self, node: Any, managed: bool = False) -> None:
        for g in self.groups:
            g.declare(node, managed)

    def _split(self, changed: Sequence[Any]) -> list[tuple[ParamGroup, dict[str, Any]]]:
        out = []
        for g in self.groups:
            mine = {p.name: p.value for p in changed if g.owns(p.name)}
            if mine:
                out.append((g, mine))
        return out

    def check(self, changed: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        for g, mine in self._split(changed):
            why = g.refusal(mine)
            if why:
                return SetParametersResult(successful=False, reason=why)
        return SetParametersResult(successful=True)

    def apply(self, changed: Sequence[Any]) -> None:
        for g, mine in self._split(changed):
            g.apply(mine)


def checked(fn: Callable[[Mapping[str, Any]], Any]) -> Check:
    """A group check from a whole-group validation that raises ConfigError."""
    def check(changed: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        try:
            fn(values)
        except ConfigError as e:
            return str(e)
        return ""
    return check


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
