"""ROS 2 layer of seg_ros: the only package that imports rclpy.

``node`` is the SegmentationNode, ``convert`` turns messages into core types and back, and
``params`` declares and validates the node's parameters (pure functions, unit-testable).
"""
