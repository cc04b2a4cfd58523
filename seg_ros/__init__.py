"""seg_ros: semantic segmentation for ROS 2 robots, with a ROS-free core."""

__version__ = "0.1.0"
