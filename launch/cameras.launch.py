"""Launch seg_ros's segmentation node on several cameras with one engine (issue: several
cameras, one node).

    ros2 launch seg_ros cameras.launch.py front:=/front_camera left:=/left_camera \
        rear:=/rear_camera model:=/models/my_batched.onnx

The params file (default: the shipped config/cameras.yaml) names the cameras
(``cameras: [front, left, rear]``); camera ``c`` reads ``c/image`` and ``c/camera_info``,
remapped here to ``<c>/image_raw`` and ``<c>/camera_info`` of the namespace given as argument
``c``. Outputs: /<namespace>/segmentation_node/<c>/{labels,confidence,color_mask,overlay},
one label_info. A params file naming other cameras needs its own remappings (or
``--ros-args -r <c>/image:=...`` with ``seg-ros node``).
"""

from __future__ import annotations

from typing import Any

CAMERAS = ("front", "left", "rear")  # the cameras of config/cameras.yaml


def remappings(namespaces: dict[str, str], compressed: bool = False) -> list[tuple[str, str]]:
    """Node-relative inputs of each camera -> its driver's topics under ``namespaces[c]``."""
    out = []
    for cam, ns in namespaces.items():
        image = f"{ns.rstrip('/')}/image_raw"
        out += [(f"{cam}/image/compressed" if compressed else f"{cam}/image",
                 f"{image}/compressed" if compressed else image),
                (f"{cam}/camera_info", f"{ns.rstrip('/')}/camera_info")]
    return out


def _node_action(context: Any) -> list[Any]:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {"input_transport": arg("input_transport"),
                 **({"model_path": arg("model")} if arg("model") else {})}
    return [Node(package="seg_ros", executable="segmentation_node", name="segmentation_node",
                 namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
                 parameters=[LaunchConfiguration("params_file"), overrides],
                 remappings=remappings({c: arg(c) for c in CAMERAS},
                                       arg("input_transport") == "compressed"))]


def generate_launch_description() -> Any:
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch_ros.substitutions import FindPackageShare

    from launch import LaunchDescription

    return LaunchDescription([
        *(DeclareLaunchArgument(c, default_value=f"/{c}_camera",
                                description=f"namespace of the {c} camera's driver")
          for c in CAMERAS),
        DeclareLaunchArgument("params_file", default_value=[FindPackageShare("seg_ros"),
                                                            "/config/cameras.yaml"],
                              description="node parameters naming the cameras"),
        DeclareLaunchArgument("model", default_value="",
                              description="model file; '' = the params file's model_path"),
        DeclareLaunchArgument("input_transport", default_value="raw",
                              description="raw or compressed (sets the parameter too)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
        OpaqueFunction(function=_node_action),
    ])
