"""The organised semantic cloud (seg_ros.depth.CloudBuffer) -> sensor_msgs/PointCloud2."""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from seg_ros.depth import CloudBuffer
from seg_ros.ros.convert import byte_array


def cloud_msg(cloud: CloudBuffer, header: Header) -> Any:
    """PointCloud2 of the filled buffer: organised (height x width of the depth image), not
    dense (NaN x y z where the depth had no return), little endian, with ``header`` (the
    colour frame's: its stamp, and its optical frame_id, which the registered depth shares)."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = cloud.height, cloud.width
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=1)
                  for name, offset, datatype in cloud.fields]
    msg.is_bigendian = False
    msg.point_step = cloud.point_step
    msg.row_step = cloud.row_step
    msg.data = byte_array(cloud.data.data.cast("B"))  # the array's own buffer, no copy
    msg.is_dense = False
    return msg
