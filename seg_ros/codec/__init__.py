"""ROS-free image codec: sensor_msgs/Image and CompressedImage fields <-> NumPy arrays.

Everything decodes to RGB uint8 of shape (H, W, 3), the layout the segmentation model eats.
Pure NumPy + OpenCV, no rclpy and no torch, so it is testable and benchmarkable anywhere.

Memory notes (they matter to callers):

* ``decode_raw('rgb8', ...)`` returns a *view* of ``data`` (no copy); with a padded ``step`` the
  view is strided (row stride = step). If ``data`` is ``bytes`` the view is read-only; if it is
  rclpy's ``array.array('B')`` the view is writable and aliases the message. Copy it before
  modifying it in place or handing it to ``torch.from_numpy`` (which warns on read-only arrays).
* Every other encoding returns a fresh C-contiguous array.
* ``encode_raw`` returns a flat ``memoryview`` of bytes (format ``'B'``), zero-copy when the
  input already has the target dtype and layout. rclpy's ``uint8[]`` setter only skips its
  per-byte Python check for ``array.array('B')``; build one with ``a = array.array('B');
  a.frombytes(data)`` (a single memcpy) and assign that.
"""

from seg_ros.codec.compressed import (
    COMPRESSED_FORMATS,
    compressed_size,
    decode_compressed,
    encode_compressed,
)
from seg_ros.codec.raw import (
    DEFAULT_MAX_PIXELS,
    ENCODINGS,
    RAW_OUTPUT_ENCODINGS,
    check_pixels,
    decode_compressed_labels,
    decode_labels,
    decode_raw,
    encode_raw,
    mono16_to_mono8,
)
from seg_ros.errors import CodecError

__all__ = [
    "COMPRESSED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "ENCODINGS",
    "RAW_OUTPUT_ENCODINGS",
    "CodecError",
    "check_pixels",
    "compressed_size",
    "decode_compressed",
    "decode_compressed_labels",
    "decode_labels",
    "decode_raw",
    "encode_compressed",
    "encode_raw",
    "mono16_to_mono8",
]
