"""Messages <-> core types, kept thin: the pixel work is in :mod:`seg_ros.codec`.

Speed rules (rclpy Kilted): incoming ``msg.data`` is an ``array.array('B')`` that the codec
reads through ``np.frombuffer`` (no copy); outgoing ``msg.data`` is an ``array.array('B')`` filled
with one ``frombytes`` memcpy from the codec's memoryview. Assigning an ndarray or a list makes
rclpy check and convert every byte in Python (about 1000x slower for a 640x480 image).
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from seg_ros import codec
from seg_ros.stamps import stamp_ns as stamp_ns  # the node's key for frames


def image_to_rgb(msg: Image, max_pixels: int = codec.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8 (H, W, 3); a zero-copy view for rgb8. Raises CodecError
    (also for more than ``max_pixels`` pixels, before anything is allocated)."""
    return codec.decode_raw(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian), max_pixels)


def compressed_to_rgb(msg: CompressedImage,
                      max_pixels: int = codec.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG/PNG) -> RGB uint8 (H, W, 3). Raises CodecError
    (also when the header states more than ``max_pixels`` pixels: nothing is decoded)."""
    return codec.decode_compressed(msg.format, msg.data, max_pixels)


def byte_array(data: Any) -> array.array:
    """Any bytes-like object -> ``array.array('B')`` in one memcpy (rclpy's fast path)."""
    out = array.array("B")
    out.frombytes(data)
    return out


def to_image_msg(image: np.ndarray, encoding: str, header: Header) -> Image:
    """(H, W) labels / (H, W, 3) RGB array -> sensor_msgs/Image with ``header`` (shared, not
    copied: the outputs of one frame carry the input's stamp and frame_id)."""
    step, data = codec.encode_raw(image, encoding)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = byte_array(data)
    return msg


def occupancy_grid_msg(cells: np.ndarray, resolution: float, origin_xy: tuple[float, float],
                       header: Header) -> Any:
    """int8 (rows, cols) cells (free 0 / occupied 100 / unknown -1; row 0 at ``origin_xy``, the
    grid's lower-left corner in metres in ``header.frame_id``) -> nav_msgs/OccupancyGrid.

    For the floor grid: ``cells[i, j]`` is the cell at x = origin_x + (j + 0.5) * resolution,
    y = origin_y + (i + 0.5) * resolution, as OccupancyGrid stores it (row-major, x fastest).
    """
    from nav_msgs.msg import OccupancyGrid

    grid = np.ascontiguousarray(cells, dtype=np.int8)
    msg = OccupancyGrid()
    msg.header = header
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(resolution)
    msg.info.height, msg.info.width = int(grid.shape[0]), int(grid.shape[1])
    msg.info.origin.position.x, msg.info.origin.position.y = map(float, origin_xy)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(grid.data.cast("B"))
    msg.data = data
    return msg
