"""The organised semantic point cloud's memory layout, filled without a loop over pixels.

One point per depth pixel, row-major (PointCloud2 height x width = the depth image), little
endian, in the camera optical frame (metres):

==========  ======  =====================================================================
field       offset  type
==========  ======  =====================================================================
x, y, z     0 4 8   FLOAT32; NaN for a pixel without a depth return (the cloud is not dense)
label       12      UINT8 class id (UINT16 when the model has more than 255 classes);
                    the maximum value (255 / 65535) where no colour pixel is seen
confidence  14      UINT8, max softmax x 255 (0 where no colour pixel is seen)
rgb         16      FLOAT32 holding 0x00RRGGBB (the PCL / RViz packing); only when asked
==========  ======  =====================================================================

``point_step`` is 16 bytes, 20 with rgb; ``row_step = point_step * width``.
"""

from __future__ import annotations

import numpy as np

from seg_ros.depth.rays import RayTable
from seg_ros.errors import ConfigError

# sensor_msgs/PointField datatype codes
UINT8, UINT16, FLOAT32 = 2, 4, 7


def cloud_fields(wide_labels: bool, rgb: bool) -> list[tuple[str, int, int]]:
    """(name, offset, PointField datatype) of each field, as the table above."""
    fields = [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32),
              ("label", 12, UINT16 if wide_labels else UINT8), ("confidence", 14, UINT8)]
    return [*fields, ("rgb", 16, FLOAT32)] if rgb else fields


class CloudBuffer:
    """A reusable (height, width, point_step) byte buffer for one cloud layout.

    The message conversion copies it once (rclpy's fast byte path), so the next frame may
    overwrite it.
    """

    def __init__(self, height: int, width: int, wide_labels: bool = False,
                 rgb: bool = False) -> None:
        self.height, self.width = int(height), int(width)
        self.wide_labels, self.rgb = wide_labels, rgb
        self.point_step = 20 if rgb else 16
        self.fields = cloud_fields(wide_labels, rgb)
        self.data = np.zeros((self.height, self.width, self.point_step), np.uint8)
        self._floats = self.data.view(np.float32)  # (h, w, point_step / 4)

    def fits(self, height: int, width: int, wide_labels: bool, rgb: bool) -> bool:
        return (height, width, wide_labels, rgb) == (self.height, self.width, self.wide_labels,
                                                    self.rgb)

    @property
    def row_step(self) -> int:
        return self.point_step * self.width

    def fill(self, depth_m: np.ndarray, rays: RayTable, labels: np.ndarray,
             confidence: np.ndarray | None, rgb: np.ndarray | None = None,
             pixel_map: np.ndarray | None = None) -> np.ndarray:
        """Write one frame; returns the (height, width, point_step) uint8 buffer.

        Args:
            depth_m: (h, w) float32 metres along the optical axis, NaN = no return.
            rays: the depth camera's ray table, (h, w).
            labels: (H, W) uint8 / uint16 class ids of the colour image.
            confidence: (H, W) uint8 or None (written as 0).
            rgb: (H, W, 3) uint8 colour image, only when the buffer has an rgb field.
            pixel_map: flat colour pixel index per depth pixel (-1 = none), or None when the
                depth image is registered at the colour resolution (pixel for pixel).
        """
        if depth_m.shape != rays.shape or depth_m.shape != (self.height, self.width):
            raise ConfigError(f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]} but its "
                              f"camera_info describes {rays.shape[1]}x{rays.shape[0]}: publish "
                              "the depth image's own camera_info on depth/camera_info")
        f = self._floats
        np.multiply(rays.x, depth_m, out=f[:, :, 0])
        np.multiply(rays.y, depth_m, out=f[:, :, 1])
        f[:, :, 2] = depth_m
        gather = _Gather(pixel_map, labels.shape[:2], (self.height, self.width))
        if self.wide_labels:
            self.data[:, :, 12:14].view(np.uint16)[:, :, 0] = gather(labels, 65535)
        else:
            self.data[:, :, 12] = gather(labels, 255)
        self.data[:, :, 14] = 0 if confidence is None else gather(confidence, 0)
        if self.rgb:
            if rgb is None:
                raise ConfigError("the cloud has an rgb field but no colour image was given")
            c = gather(rgb, 0).astype(np.uint32)
            packed = (c[:, :, 0] << 16) | (c[:, :, 1] << 8) | c[:, :, 2]
            self.data[:, :, 16:20].view(np.uint32)[:, :, 0] = packed
        return self.data


class _Gather:
    """Colour-image values at each depth pixel: the array itself when registered pixel for
    pixel, else a gather through the pixel map (``fill`` where no colour pixel is seen)."""

    def __init__(self, pixel_map: np.ndarray | None, colour_shape: tuple[int, ...],
                 depth_shape: tuple[int, int]) -> None:
        if pixel_map is None and tuple(colour_shape) != depth_shape:
            raise ConfigError(
                f"depth image is {depth_shape[1]}x{depth_shape[0]}, colour image "
                f"{colour_shape[1]}x{colour_shape[0]}: publish the depth camera_info on "
                "depth/camera_info so the depth pixels can be mapped to colour pixels")
        self.map = pixel_map
        self.shape = depth_shape

    def __call__(self, image: np.ndarray, fill: int) -> np.ndarray:
        if self.map is None:
            return image
        flat = image.reshape(-1, *image.shape[2:])
        out = flat[np.maximum(self.map, 0)]
        out[self.map < 0] = fill
        return out.reshape(*self.shape, *image.shape[2:])
