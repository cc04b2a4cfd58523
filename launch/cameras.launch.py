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

The params file's values stand: ``model`` and ``input_transport`` override them only when
given (both the raw and the compressed topic are remapped, so either transport finds its
driver). ``depth``, ``depth_camera_info`` and ``odom`` remap the depth pair and the odometry
(for ~/floor_map without tf); ``lifecycle:=true`` starts the managed node, unconfigured.
"""

from __future__ import annotations

from typing import Any

CAMERAS = ("front", "left", "rear")  # the cameras of config/cameras.yaml


INPUT_REMAPS = {"depth": "depth/image", "depth_camera_info": "depth/camera_info", "odom": "odom"}


def remappings(namespaces: dict[str, str]) -> list[tuple[str, str]]:
    """Node-relative inputs of each camera -> its driver's topics under ``namespaces[c]``: the
    raw and the compressed image (the node subscribes the one its input_transport names)."""
    out = []
    for cam, ns in namespaces.items():
        image = f"{ns.rstrip('/')}/image_raw"
        out += [(f"{cam}/image", image), (f"{cam}/image/compressed", f"{image}/compressed"),
                (f"{cam}/camera_info", f"{ns.rstrip('/')}/camera_info")]
    return out


def overrides(model: str, input_transport: str) -> dict[str, str]:
    """Parameters the user gave on the command line ('' = not given: the file's value)."""
    return {name: value for name, value in (("model_path", model),
                                            ("input_transport", input_transport)) if value}


def _node_action(context: Any) -> list[Any]:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    given = overrides(arg("model"), arg("input_transport"))
    managed = arg("lifecycle").strip().lower() in ("true", "1", "yes", "on")
    return [(LifecycleNode if managed else Node)(
        package="seg_ros", name="segmentation_node",
        executable="segmentation_lifecycle_node" if managed else "segmentation_node",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), *([given] if given else [])],
        remappings=[*remappings({c: arg(c) for c in CAMERAS}),
                    *((topic, arg(a)) for a, topic in INPUT_REMAPS.items())])]


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
        DeclareLaunchArgument("input_transport", default_value="",
                              description="raw or compressed; '' = the params file's value"),
        *(DeclareLaunchArgument(a, default_value=topic, description=f"topic of {topic}")
          for a, topic in INPUT_REMAPS.items()),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: the managed node, unconfigured until a "
                              "lifecycle manager configures and activates it"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
        OpaqueFunction(function=_node_action),
    ])
