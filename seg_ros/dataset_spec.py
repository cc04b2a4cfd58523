"""What a dataset's labels mean: class names, colours, traversable ids, ignore index and label
format, read from a dataset YAML/JSON (config/camvid_dataset.yaml). ROS- and torch-free: the
model card builder reads it as well as training and evaluation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.errors import ConfigError
from seg_ros.model_card import ModelCard

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "config" / "camvid_dataset.yaml"


def _rgb(values: Sequence[Any]) -> tuple[int, int, int]:
    """[r, g, b] -> (r, g, b) as ints; ValueError unless exactly three values."""
    r, g, b = (int(v) for v in values)
    return r, g, b


@dataclass(frozen=True)
class DatasetSpec:
    """Class list and label conventions of a dataset."""

    name: str
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    traversable: tuple[int, ...] = ()
    ignore_index: int | None = None
    label_format: str = "index"  # "index" | "color"
    void_color: tuple[int, int, int] | None = None
    source: str = field(default="", compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def card(self, **overrides: Any) -> ModelCard:
        """A model card for a network trained on this dataset."""
        kw: dict[str, Any] = dict(name=self.name, class_names=self.class_names,
                                  colors=self.colors, traversable=self.traversable,
                                  ignore_index=self.ignore_index)
        kw.update(overrides)
        return ModelCard(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class_names": list(self.class_names),
                "colors": [list(c) for c in self.colors], "traversable": list(self.traversable),
                "ignore_index": self.ignore_index, "label_format": self.label_format,
                "void_color": list(self.void_color) if self.void_color else None}


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Read a dataset YAML/JSON (see config/camvid_dataset.yaml for the fields)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset spec {path} not found: pass an existing YAML/JSON file "
                          f"(see {DEFAULT_SPEC})")
    try:
        if path.suffix == ".json":
            d = json.loads(path.read_text())
        else:
            import yaml

            d = yaml.safe_load(path.read_text())
        classes = d["classes"]
        names = tuple(str(c["name"]) for c in classes)
        colors = tuple(_rgb(c["color"]) for c in classes)
        fmt = str(d.get("label_format", "index"))
        void = d.get("void_color")
        spec = DatasetSpec(
            name=str(d.get("name", path.stem)), class_names=names, colors=colors,
            traversable=tuple(int(t) for t in d.get("traversable", ())),
            ignore_index=None if d.get("ignore_index") is None else int(d["ignore_index"]),
            label_format=fmt, void_color=_rgb(void) if void else None,
            source=str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"dataset spec {path} is malformed ({type(e).__name__}: {e}): it needs "
                          f"'classes: [{{name, color: [r, g, b]}}, ...]' like {DEFAULT_SPEC}"
                          ) from None
    if spec.label_format not in ("index", "color"):
        raise ConfigError(f"dataset spec {path}: label_format {fmt!r} must be 'index' or 'color'")
    if spec.ignore_index is not None and 0 <= spec.ignore_index < spec.num_classes:
        raise ConfigError(f"dataset spec {path}: ignore_index {spec.ignore_index} is a real "
                          f"class id: use a value >= {spec.num_classes} (e.g. 255)")
    return spec


def find_dataset_spec(root: str | Path, spec: str | Path | None = None) -> DatasetSpec:
    """The explicit ``spec``, else ROOT/dataset.{yaml,yml,json}, else the CamVid spec."""
    if spec is not None:
        return load_dataset_spec(spec)
    for name in ("dataset.yaml", "dataset.yml", "dataset.json"):
        if (Path(root) / name).is_file():
            return load_dataset_spec(Path(root) / name)
    return load_dataset_spec(DEFAULT_SPEC)
