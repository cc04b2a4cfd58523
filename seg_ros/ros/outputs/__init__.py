"""The node's outputs, one module each, and the one registry the worker walks.

A new output topic is one module here (an :class:`~seg_ros.ros.outputs.base.Output`: its
parameter group, wanted?, what it needs, publish, health) and one line in :data:`REGISTRY`,
whose order is the order of publication: labels first, then the floor grid and the cloud,
confidence, the pictures, camera_info, and the fused map (made from the grid).
"""

from __future__ import annotations

from seg_ros.ros import depth_hook, params
from seg_ros.ros.outputs import mask
from seg_ros.ros.outputs.base import FrameResult, Output, OutputBase
from seg_ros.ros.outputs.camera_info import CameraInfoOutput
from seg_ros.ros.outputs.color_mask import ColorMask
from seg_ros.ros.outputs.confidence import Confidence
from seg_ros.ros.outputs.floor_grid import FloorGridOutput
from seg_ros.ros.outputs.floor_map import FloorMap
from seg_ros.ros.outputs.labels import Labels
from seg_ros.ros.outputs.overlay import Overlay
from seg_ros.ros.outputs.points import Points
from seg_ros.ros.param_groups import ParamGroup

REGISTRY: tuple[type[OutputBase], ...] = (
    Labels,
    FloorGridOutput,
    Points,
    Confidence,
    mask.Mask,
    ColorMask,
    Overlay,
    CameraInfoOutput,
    FloorMap,
)


def node_group() -> ParamGroup:
    """The node's own parameters (model, engine, inputs, the image outputs' switches)."""
    return ParamGroup("node", "Node", params.SPECS)


def other_groups(cameras: tuple[str, ...]) -> list[ParamGroup]:
    """The depth input's group, then each output's, in registry order, for a node with these
    cameras (() for one)."""
    groups = [depth_hook.group()]
    for cls in REGISTRY:
        groups += cls.param_groups(cameras)
    return groups


def param_groups(cameras: tuple[str, ...]) -> list[ParamGroup]:
    """Every parameter group of a node with these cameras, as the node declares them."""
    return [node_group(), *other_groups(cameras)]


__all__ = ["REGISTRY", "FrameResult", "Output", "OutputBase", "node_group", "other_groups",
           "param_groups"]
