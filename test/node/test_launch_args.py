"""launch/segmentation.launch.py: only the arguments a user gives override the params file.

The argument handling is tested without ``launch`` (not installable here); the launch test at
the bottom runs the real launch file where ``launch`` and ``launch_ros`` are importable and
seg_ros is installed (colcon), and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from seg_ros.live import pick_domain

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "segmentation.launch.py"


def _load_launch_file() -> ModuleType:
    spec = importlib.util.spec_from_file_location("segmentation_launch", LAUNCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_file_imports_without_launch() -> None:
    """Loading the file imports neither launch nor launch_ros (that happens at launch time)."""
    _load_launch_file()


def test_nothing_given_overrides_nothing() -> None:
    """A params file setting model_path and input_transport is not overridden by defaults."""
    launch_file = _load_launch_file()
    unset = {arg: launch_file.UNSET for arg in launch_file.PARAMETER_ARGUMENTS}
    assert launch_file.parameter_overrides(unset) == {}
    assert launch_file.parameter_overrides({}) == {}


def test_given_arguments_override_only_their_parameter() -> None:
    launch_file = _load_launch_file()
    given = {"model": "/models/my.onnx", "input_transport": "", "backend": "", "device": "cuda"}
    assert launch_file.parameter_overrides(given) == {"model_path": "/models/my.onnx",
                                                      "device": "cuda"}


def test_lifecycle_argument_picks_the_managed_executable() -> None:
    """lifecycle:=true runs the executable the package installs for the managed node."""
    import re

    launch_file = _load_launch_file()
    assert launch_file.executable("false") == ("segmentation_node", False)
    assert launch_file.executable(" True ") == ("segmentation_lifecycle_node", True)
    installed = re.findall(r'"(\w+) = seg_ros\.ros\.\w+:main"', (REPO / "setup.py").read_text())
    assert {launch_file.executable(v)[0] for v in ("true", "false")} <= set(installed)


def test_parameter_arguments_name_declared_node_parameters() -> None:
    """Every launch argument sets a parameter the node really declares."""
    from seg_ros.ros.params import SPEC_BY_NAME

    launch_file = _load_launch_file()
    targets = {param for param, _ in launch_file.PARAMETER_ARGUMENTS.values()}
    assert targets <= set(SPEC_BY_NAME)
    assert all(SPEC_BY_NAME[t].kind == "string" for t in targets)  # passed as strings


# ----------------------------------------------------------------------- the real launch file


def _installed_seg_ros() -> None:
    """The real launch tools (`make ros-tools`) and an installed seg_ros (ament index) are
    here; skip only without an installed seg_ros."""
    import launch.actions  # noqa: F401
    import launch_ros  # noqa: F401
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        prefix = Path(get_package_prefix("seg_ros"))
    except PackageNotFoundError:
        pytest.skip("seg_ros is not installed: colcon build, then source install/setup.bash")
    if not (prefix / "lib" / "seg_ros" / "segmentation_node").exists():
        pytest.skip(f"{prefix}/lib/seg_ros/segmentation_node missing: colcon build seg_ros")


def _node_parameters(names: list[str], timeout_s: float = 30.0) -> dict[str, str]:
    """String parameters of /segmentation_node, read over its parameter service."""
    import rclpy
    from rcl_interfaces.srv import GetParameters

    node = rclpy.create_node("launch_args_probe")
    try:
        # the service type has no stubs: the client's request / response types are unknown
        client: Any = node.create_client(GetParameters, "/segmentation_node/get_parameters")
        assert client.wait_for_service(timeout_sec=timeout_s), "the launched node never came up"
        future = client.call_async(GetParameters.Request(names=names))
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
        result = future.result()
        assert result is not None, "get_parameters timed out"
        return {n: v.string_value for n, v in zip(names, result.values)}
    finally:
        node.destroy_node()


@pytest.mark.slow
@pytest.mark.ros
def test_launch_keeps_params_file_values(tmp_path: Path, tiny_model: Path) -> None:
    """ros2 launch with a params file and no model/input_transport: the file's values stand;
    with device given, that one parameter is overridden."""
    _installed_seg_ros()
    import rclpy
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    from launch import LaunchDescription, LaunchService

    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n"
                      f"    model_path: '{tiny_model}'\n    input_transport: compressed\n")
    os.environ["ROS_DOMAIN_ID"] = str(pick_domain())
    service = LaunchService()
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"params_file": str(params), "device": "cpu"}.items())]))
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def probe() -> None:
        """Read the launched node's parameters, then end the launch (thread-safe shutdown)."""
        rclpy.init()
        try:
            got.update(_node_parameters(["model_path", "input_transport", "device"]))
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            rclpy.shutdown()
            service.shutdown()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    service.run()  # LaunchService runs only in the main thread (it installs signal handlers)
    thread.join(30)
    if errors:
        raise errors[0]
    assert got == {"model_path": str(tiny_model), "input_transport": "compressed",
                   "device": "cpu"}
