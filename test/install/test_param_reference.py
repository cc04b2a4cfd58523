"""docs/parameters.md is generated from the specs and agrees with what a real node declares.

The file is compared with a fresh rendering, and a live node with every parameter group on
(two cameras, a floor grid, the fused map, depth) is asked over its real parameter services for
the names and values it declared: each must be documented, with the documented default.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from seg_ros.ros.param_reference import CAMERA, DOC_PATH, all_specs, render

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402

from seg_ros.live import LiveClient, NodeProcess, pick_domain, wait_for  # noqa: E402

CAMERAS = ("front", "rear")
ROS_OWN = {"use_sim_time", "start_type_description_service"}  # declared by rclpy itself
OVERRIDDEN = {"cameras", *(f"{c}.camera_pose" for c in CAMERAS)}  # set by the test below


def test_the_reference_is_up_to_date() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), \
        "docs/parameters.md is out of date: run python -m seg_ros.ros.param_reference"


def documented(name: str) -> str | None:
    """The reference's name for a declared parameter (per-camera ones by placeholder)."""
    specs = all_specs()
    if name in specs:
        return name
    head, _, rest = name.partition(".")
    generic = f"{CAMERA}.{rest}"
    return generic if head in CAMERAS and generic in specs else None


def same_default(declared: Any, default: Any) -> bool:
    if default is None:
        return declared in (None, [], ())
    if isinstance(default, float):
        return isinstance(declared, (int, float)) and math.isclose(declared, default)
    if isinstance(default, (list, tuple)):
        return list(declared) == list(default)
    return bool(declared == default)


def declared_parameters(client: LiveClient, node: str) -> dict[str, Any]:
    names = client.call(f"{node}/list_parameters", ListParameters,
                        ListParameters.Request(depth=0)).result.names
    found: dict[str, Any] = {}
    for name in names:  # one by one: a parameter without a value is left out of a batch reply
        values = client.call(f"{node}/get_parameters", GetParameters,
                             GetParameters.Request(names=[name])).values
        found[name] = parameter_value_to_python(values[0]) if values else None
    return found


@pytest.mark.ros
@pytest.mark.slow
def test_every_declared_parameter_is_documented_with_its_default() -> None:
    domain, node = pick_domain(), "/param_ref"
    proc = NodeProcess(["-p", f"cameras:=[{', '.join(CAMERAS)}]",
                        "-p", "front.camera_pose:=[0.0, 0.0, 1.2, 0.0, 0.3, 0.0]",
                        "-p", "rear.camera_pose:=[-0.5, 0.0, 1.2, 0.0, 0.3, 3.14159]"],
                       domain, name="param_ref")
    try:
        with LiveClient(domain) as client:
            def floor_declared() -> dict[str, Any] | None:
                if not proc.alive():
                    raise RuntimeError(f"node exited:\n{proc.tail()}")
                try:
                    params = declared_parameters(client, node)
                except TimeoutError:
                    return None
                return params if "map.frame" in params else None

            params = wait_for(floor_declared, 90, "the node to declare its floor parameters")
    finally:
        proc.stop()
    ours = {n: v for n, v in params.items() if n not in ROS_OWN and not n.startswith("qos_")}
    missing = sorted(n for n in ours if documented(n) is None)
    assert not missing, f"declared but not in docs/parameters.md: {missing}"
    specs = all_specs()
    wrong = {n: (v, specs[str(documented(n))].default) for n, v in ours.items()
             if n not in OVERRIDDEN and not same_default(v, specs[str(documented(n))].default)}
    assert not wrong, f"documented with another default (declared, documented): {wrong}"
    groups = {documented(n) for n in ours}
    assert {"map.frame", "grid.resolution", "depth.max_skew_ms", "grid.merge",
            f"{CAMERA}.camera_pose", "overlay_alpha"} <= groups
