"""The node's parameter reference (docs/parameters.md), generated from the parameter specs.

The groups are the ones the node declares (seg_ros.ros.outputs.param_groups: the node, the
depth input and each output of the registry), so the reference cannot drift from the code:
``python -m seg_ros.ros.param_reference`` rewrites the file, and a test compares it with what a
running node really declares.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seg_ros.ros.outputs import param_groups
from seg_ros.ros.param_groups import ParamGroup
from seg_ros.ros.params import ParamSpec

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
CAMERA = "<camera>"  # stands for each name listed in `cameras`


def groups() -> list[ParamGroup]:
    """Every parameter group (the node's, the depth input's, each output's in registry order),
    as a node with several cameras declares them (``<camera>`` for each name)."""
    return param_groups((CAMERA,))


def all_specs() -> dict[str, ParamSpec]:
    """Every documented parameter by name (per-camera ones with the ``<camera>`` placeholder)."""
    return {s.name: s for g in groups() for s in g.specs}


def default_text(value: Any) -> str:
    """A spec's default as written in a params file; unset parameters say so."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def change_text(spec: ParamSpec) -> str:
    """When a new value takes effect."""
    if spec.live:
        return "live"
    return "restart the node"


def limits_text(spec: ParamSpec) -> str:
    """Range or choices, if the spec has any."""
    if spec.float_range is not None:
        return f"{spec.float_range[0]:g} .. {spec.float_range[1]:g}"
    if spec.int_range is not None:
        return f"{spec.int_range[0]} .. {spec.int_range[1]}"
    return ", ".join(spec.choices)


def render() -> str:
    """The whole reference as Markdown."""
    out = ["# Node parameters", "",
           "Generated from the parameter specs by `python -m seg_ros.ros.param_reference`;",
           "a test fails when this file and the node disagree. `live` parameters change with",
           "`ros2 param set`; the others are read when the node starts. An integer is accepted",
           "wherever a double is declared.", ""]
    for group in groups():
        when = f"{group.when}; `{CAMERA}` is each camera's name" if group.key == "cameras" \
            else group.when
        out += [f"## {group.title}", "", f"Declared {when}.", "",
                "| name | type | default | change | limits | meaning |",
                "|---|---|---|---|---|---|"]
        for s in group.specs:
            meaning = s.description.replace("|", "\\|")
            out.append(f"| `{s.name}` | {s.kind} | `{default_text(s.default)}` | "
                       f"{change_text(s)} | {limits_text(s)} | {meaning} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write (or --check) docs/parameters.md.")
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m seg_ros.ros.param_reference",
                  file=sys.stderr)
            return 1
        return 0
    DOC_PATH.parent.mkdir(exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
