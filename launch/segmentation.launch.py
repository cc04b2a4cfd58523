"""Launch seg_ros's segmentation node on one camera.

    ros2 launch seg_ros segmentation.launch.py camera:=/front_camera
    ros2 launch seg_ros segmentation.launch.py image:=/cam/image_raw input_transport:=compressed \
        model:=/models/my.onnx params_file:=/path/to/params.yaml

The node subscribes ``image`` (default <camera>/image_raw; <image>/compressed with
input_transport:=compressed) and ``camera_info`` (default <camera>/camera_info); its outputs are
/<namespace>/segmentation_node/{labels,confidence,color_mask,overlay,label_info}. Fast DDS is
switched to its LARGE_DATA transports, without which best-effort images of a few hundred KB are
dropped.
"""

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    camera = LaunchConfiguration("camera")
    image = LaunchConfiguration("image")
    arg = DeclareLaunchArgument
    return LaunchDescription([
        arg("camera", default_value="/camera",
            description="camera namespace: <camera>/image_raw and <camera>/camera_info"),
        arg("image", default_value=[camera, "/image_raw"],
            description="image topic; with input_transport:=compressed, <image>/compressed"),
        arg("camera_info", default_value=[camera, "/camera_info"],
            description="camera_info topic (kept for the floor grid)"),
        arg("model", default_value="",
            description="model file (.onnx/.engine/.pt); '' = the shipped models/camvid.onnx"),
        arg("params_file", default_value=[FindPackageShare("seg_ros"), "/config/camvid.yaml"],
            description="node parameters (ROS 2 YAML)"),
        arg("input_transport", default_value="raw",
            description="raw (sensor_msgs/Image) or compressed (CompressedImage, JPEG/PNG)"),
        arg("namespace", default_value="", description="namespace of the node"),
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
        Node(
            package="seg_ros", executable="segmentation_node", name="segmentation_node",
            namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"),
                        {"model_path": LaunchConfiguration("model"),
                         "input_transport": LaunchConfiguration("input_transport")}],
            remappings=[("image", image),
                        ("image/compressed", [image, "/compressed"]),
                        ("camera_info", LaunchConfiguration("camera_info"))],
        ),
    ])
