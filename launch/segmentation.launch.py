"""Launch seg_ros's segmentation node on one camera.

    ros2 launch seg_ros segmentation.launch.py camera:=/front_camera
    ros2 launch seg_ros segmentation.launch.py image:=/cam/image_raw input_transport:=compressed \
        model:=/models/my.onnx params_file:=/path/to/params.yaml

The node subscribes ``image`` (default <camera>/image_raw; <image>/compressed with
input_transport:=compressed) and ``camera_info`` (default <camera>/camera_info); its outputs are
/<namespace>/segmentation_node/{labels,confidence,color_mask,overlay,floor_grid,label_info}.
RGB-D and map users remap the depth pair and the odometry with ``depth``, ``depth_camera_info``
and ``odom`` (defaults: the node's own depth/image, depth/camera_info and odom), e.g.

    ros2 launch seg_ros segmentation.launch.py camera:=/camera \
        depth:=/camera/aligned_depth_to_color/image_raw \
        depth_camera_info:=/camera/aligned_depth_to_color/camera_info odom:=/odometry/filtered

Parameters come from ``params_file`` (default: the shipped config/camvid.yaml). ``model``,
``input_transport``, ``backend`` and ``device`` override it only when given on the command line:
left out, the params file's values stand. Fast DDS is switched to its LARGE_DATA transports,
without which best-effort images of a few hundred KB are dropped.

``lifecycle:=true`` starts the managed node (segmentation_lifecycle_node) unconfigured, for
Nav2's lifecycle_manager to configure and activate (docs/interfaces.md).

The argument handling (:func:`parameter_overrides`, :func:`executable`) needs no ``launch``
import, so it is unit-tested without a ROS install (test/node/test_launch_args.py).
"""

from __future__ import annotations

from typing import Any

# launch argument -> node parameter it sets when given on the command line.
PARAMETER_ARGUMENTS = {
    "model": ("model_path", "model file (.onnx/.engine/.pt); the shipped models/camvid.onnx "
              "when neither this nor the params file sets model_path"),
    "input_transport": ("input_transport", "raw (sensor_msgs/Image) or compressed "
                        "(CompressedImage, JPEG/PNG)"),
    "backend": ("backend", "auto | onnxruntime | tensorrt | torch"),
    "device": ("device", "cpu | cuda | cuda:N (onnxruntime also: tensorrt)"),
}
UNSET = ""  # the default of every argument above: "not given, keep the params file's value"
# launch argument -> the node's input topic it remaps (default: the topic itself, no change)
INPUT_REMAPS = {"depth": "depth/image", "depth_camera_info": "depth/camera_info", "odom": "odom"}


def parameter_overrides(values: dict[str, str]) -> dict[str, str]:
    """Node parameters from the launch arguments the user gave (non-empty), by parameter name.

    ``values`` maps launch argument names to their resolved strings. An argument left at
    :data:`UNSET` sets nothing, so the params file's value (or the node's default) stands.
    """
    return {param: values[arg] for arg, (param, _) in PARAMETER_ARGUMENTS.items()
            if values.get(arg, UNSET) != UNSET}


def executable(lifecycle: str) -> tuple[str, bool]:
    """(executable, managed) for the ``lifecycle`` argument ('true'/'false', any case)."""
    managed = lifecycle.strip().lower() in ("true", "1", "yes", "on")
    return ("segmentation_lifecycle_node" if managed else "segmentation_node"), managed


def _node_action(context: Any) -> list[Any]:
    """The node, with only the user-set parameter arguments over the params file."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.parameter_descriptions import ParameterValue

    given = {arg: LaunchConfiguration(arg).perform(context) for arg in PARAMETER_ARGUMENTS}
    overrides = {name: ParameterValue(value, value_type=str)
                 for name, value in parameter_overrides(given).items()}
    image = LaunchConfiguration("image")
    exe, managed = executable(LaunchConfiguration("lifecycle").perform(context))
    return [(LifecycleNode if managed else Node)(
        package="seg_ros", executable=exe, name="segmentation_node",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), *([overrides] if overrides else [])],
        remappings=[("image", image),
                    ("image/compressed", [image, "/compressed"]),
                    ("camera_info", LaunchConfiguration("camera_info")),
                    *((topic, LaunchConfiguration(arg)) for arg, topic in INPUT_REMAPS.items())],
    )]


def generate_launch_description() -> Any:
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.substitutions import FindPackageShare

    from launch import LaunchDescription

    camera = LaunchConfiguration("camera")
    arg = DeclareLaunchArgument
    return LaunchDescription([
        arg("camera", default_value="/camera",
            description="camera namespace: <camera>/image_raw and <camera>/camera_info"),
        arg("image", default_value=[camera, "/image_raw"],
            description="image topic; with input_transport:=compressed, <image>/compressed"),
        arg("camera_info", default_value=[camera, "/camera_info"],
            description="camera_info topic (kept for the floor grid)"),
        arg("depth", default_value=INPUT_REMAPS["depth"],
            description="depth image topic (RGB-D: ~/points, grid.source depth)"),
        arg("depth_camera_info", default_value=INPUT_REMAPS["depth_camera_info"],
            description="camera_info of the depth image (when its size differs)"),
        arg("odom", default_value=INPUT_REMAPS["odom"],
            description="nav_msgs/Odometry for ~/floor_map (without tf)"),
        arg("params_file", default_value=[FindPackageShare("seg_ros"), "/config/camvid.yaml"],
            description="node parameters (ROS 2 YAML)"),
        *(arg(name, default_value=UNSET, description=f"{text}; '' = the params file's value")
          for name, (_, text) in PARAMETER_ARGUMENTS.items()),
        arg("namespace", default_value="", description="namespace of the node"),
        arg("lifecycle", default_value="false",
            description="true: the managed node, unconfigured until a lifecycle manager "
            "configures and activates it"),
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
        OpaqueFunction(function=_node_action),
    ])
