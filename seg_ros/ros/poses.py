"""Poses for the floor outputs: the camera in grid_frame and the robot in map.frame, from tf2
at the image stamp while the floor uses tf (``use_tf`` true and tf2_ros importable), else from
the ``camera_pose`` parameter (camera) and odometry (robot, seg_ros.ros.floor_map).

One rule for one and several cameras: while tf is in use every camera's pose is tf's
(grid_frame <- the image's header.frame_id) and the robot's pose for the fused map is tf's
(map.frame <- grid_frame). The settings are the floor grid group's (grid_frame, use_tf,
tf_timeout), read when asked, so ``ros2 param set`` takes effect on the next frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from std_msgs.msg import Header

from seg_ros.errors import ConfigError
from seg_ros.floor import CameraPose
from seg_ros.floor.map import Pose2D
from seg_ros.ros.floor_config import pose_from_transform

try:  # tf2 is optional: without it the pose comes from the camera_pose parameter
    import tf2_ros
except ImportError:  # pragma: no cover - depends on the install
    tf2_ros = None


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


class PoseSource:
    """tf2 lookups for the floor outputs; ``values`` returns the floor group's current values."""

    def __init__(self, node: Any, values: Any) -> None:
        self.node, self.log, self._values = node, node.get_logger(), values
        self.tf_buffer: Any = None
        self._tf_listener: Any = None
        if self._settings()["use_tf"]:
            self.start_tf()

    def _settings(self) -> Mapping[str, Any]:
        return self._values()  # type: ignore[no-any-return]

    def start_tf(self) -> None:
        if tf2_ros is None:
            self.log.warning("use_tf is true but tf2_ros is not importable: the floor grid "
                             "uses the camera_pose parameter (install tf2_ros, or set "
                             "use_tf:=false to silence this)")
            return
        if self.tf_buffer is None:
            self.tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self.tf_buffer, self.node,
                                                          spin_thread=False)

    def tf_active(self, use_tf: bool | None = None) -> bool:
        """tf is the pose source now (``use_tf``: of a configuration not yet in force)."""
        on = self._settings()["use_tf"] if use_tf is None else use_tf
        return bool(on) and self.tf_buffer is not None

    def camera_pose(self, grid_frame: str, header: Header) -> tuple[CameraPose | None, str]:
        """The camera's pose from tf at the image stamp (grid_frame <- header.frame_id), or
        (None, why naming the fix)."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            stamp = Time.from_msg(header.stamp)
        except ValueError as e:  # rclpy refuses a negative stamp: this frame's grid only
            return None, (f"the image stamp {header.stamp.sec}.{header.stamp.nanosec:09d} s "
                          f"cannot be looked up in tf ({e}): stamp the images with the camera's "
                          "clock")
        try:
            tf = self.tf_buffer.lookup_transform(
                grid_frame, header.frame_id, stamp,
                timeout=Duration(seconds=float(self._settings()["tf_timeout"])))
            return pose_from_transform(tf), ""
        except (tf2_ros.TransformException, ConfigError) as e:
            return None, (f"transform {grid_frame} <- {header.frame_id or '(empty)'} at the "
                          f"image stamp: {e} (publish the camera's tf, or set use_tf:=false and "
                          "camera_pose)")

    def robot_pose(self, frame: str, header: Header, max_age: float
                   ) -> tuple[Pose2D | None, str]:
        """The robot's floor frame (grid_frame) in ``frame`` at the image stamp, from tf2.

        tf2 interpolates inside its buffer; an image newer than the newest transform (tf lags
        the camera) takes the newest when it is within ``max_age`` (map.max_pose_age) of the
        stamp, the rule odometry follows. Called only with a stamp > 0."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        s = self._settings()
        grid_frame = str(s["grid_frame"]).strip()
        try:
            tf = self.tf_buffer.lookup_transform(frame, grid_frame, Time.from_msg(header.stamp),
                                                 timeout=Duration(seconds=float(s["tf_timeout"])))
        except tf2_ros.TransformException as e:
            tf, why = self._newest(frame, grid_frame, header, e, max_age)
            if tf is None:
                return None, why
        t, q = tf.transform.translation, tf.transform.rotation
        return Pose2D.from_quaternion(t.x, t.y, (q.x, q.y, q.z, q.w)), ""

    def _newest(self, frame: str, grid_frame: str, header: Header, error: Exception,
                max_age: float) -> tuple[Any, str]:
        """The newest transform frame <- grid_frame when the image is at most ``max_age``
        past it, else (None, why naming the lookup's error)."""
        why = (f"transform {frame} <- {grid_frame} at the image stamp: {error} (publish "
               "odometry's tf, or set use_tf:=false to use odometry)")
        if not isinstance(error, tf2_ros.ExtrapolationException):
            return None, why
        from rclpy.time import Time

        try:
            newest = self.tf_buffer.lookup_transform(frame, grid_frame, Time())
        except tf2_ros.TransformException:
            return None, why
        gap = stamp_seconds(header.stamp) - stamp_seconds(newest.header.stamp)
        if 0.0 <= gap <= max_age:
            return newest, ""
        return None, (f"no tf pose {frame} <- {grid_frame} within map.max_pose_age = "
                      f"{max_age:g} s of the image stamp (newest {-gap:+.3f} s from it; {error})"
                      ": check the clocks and tf rates or raise map.max_pose_age")
