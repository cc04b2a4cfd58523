"""config/seg_ros.rviz shows what the node publishes, in a form RViz can display."""

from __future__ import annotations

from pathlib import Path

import yaml

from seg_ros.ros.floor_hook import TOPIC as FLOOR_TOPIC
from seg_ros.ros.floor_map import TOPIC as MAP_TOPIC
from seg_ros.ros.node import OUTPUTS
from seg_ros.ros.outputs.points import TOPIC as POINTS_TOPIC

RVIZ = Path(__file__).resolve().parents[2] / "config" / "seg_ros.rviz"
NODE = "/segmentation_node"
# rgb8 and 0..255 mono8 images RViz's Image display shows as they are. ~/labels is left out: its
# mono8 class ids 0..N-1 are not range-mapped by RViz and show black; ~/color_mask is its view.
VIEWABLE_IMAGES = {f"{NODE}/{name}" for name in ("overlay", "color_mask", "confidence")}


def displays() -> list[dict]:
    return yaml.safe_load(RVIZ.read_text())["Visualization Manager"]["Displays"]


def topics_named(display: dict) -> list[str]:
    """Every topic a display subscribes (its Topic and any other *Topic property)."""
    return [v["Value"] for k, v in display.items() if k.endswith("Topic") and isinstance(v, dict)]


def test_every_display_topic_is_one_the_node_publishes() -> None:
    published = {f"{NODE}/{name}" for name in OUTPUTS}
    published |= {f"{NODE}/{t.removeprefix('~/')}" for t in (FLOOR_TOPIC, MAP_TOPIC,
                                                               POINTS_TOPIC)}
    published.add(f"{NODE}/label_info")
    shown = [t for d in displays() for t in topics_named(d)]
    assert shown and set(shown) <= published, sorted(set(shown) - published)


def test_image_displays_are_viewable() -> None:
    images = {d["Topic"]["Value"]: d for d in displays()
              if d["Class"] == "rviz_default_plugins/Image"}
    assert set(images) <= VIEWABLE_IMAGES, sorted(set(images) - VIEWABLE_IMAGES)
    assert images[f"{NODE}/color_mask"]["Enabled"] and images[f"{NODE}/overlay"]["Enabled"]


def test_floor_grid_and_map_displays() -> None:
    maps = {d["Topic"]["Value"]: d for d in displays() if d["Class"] == "rviz_default_plugins/Map"}
    assert sorted(maps) == [f"{NODE}/floor_grid", f"{NODE}/floor_map"]
    # ~/floor_map is transient-local and published on change: a volatile display would miss it.
    fused = maps[f"{NODE}/floor_map"]["Topic"]
    assert fused["Durability Policy"] == "Transient Local"
    assert fused["Reliability Policy"] == "Reliable"


def test_semantic_cloud_display_is_off_and_coloured_by_label() -> None:
    """Off by default: subscribing ~/points makes the node build the cloud every frame."""
    (cloud,) = [d for d in displays() if d["Class"] == "rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == f"{NODE}/points" and not cloud["Enabled"]
    assert (cloud["Color Transformer"], cloud["Channel Name"]) == ("Intensity", "label")
