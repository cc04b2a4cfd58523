"""Building a model card for a model that has none (or editing one) from what a user knows:
class names, colours, normalisation, and what the graph itself shows (its outputs' rank, dtype
and channel count). Every guess is reported; every ambiguity is an error naming the flag.
ROS-free and torch-free; ``seg-ros card`` is its command line."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.errors import ConfigError

PREFERRED_OUTPUTS = ("logits", "labels", "output", "out", "seg", "pred", "predictions")


def distinct_colors(n: int) -> list[tuple[int, int, int]]:
    """n colours spread round the hue circle by the golden angle, alternating brightness."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        v = 0.95 if i % 2 == 0 else 0.7
        r, g, b = colorsys.hsv_to_rgb(h, 0.75, v)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


UNCOLOURED = ("background", "void", "unlabeled", "unlabelled", "other", "ignore")


def default_colors(names: list[str]) -> list[tuple[int, int, int]]:
    """A palette for ``names``: black for background-like classes (background, void,
    unlabeled, other: a saturated colour there would tint the whole overlay), distinct
    colours for the rest."""
    blank = [n.strip().lower().replace("-", "").replace("_", "") in UNCOLOURED for n in names]
    spread = iter(distinct_colors(len(names) - sum(blank)))
    return [(0, 0, 0) if b else next(spread) for b in blank]


def parse_classes(value: str) -> dict[str, Any]:
    """--classes: a comma list, a text file (one name a line) or a dataset YAML/JSON as
    ``seg-ros train`` reads it (then colours, traversable and ignore index come with it)."""
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        from seg_ros.dataset_spec import load_dataset_spec

        spec = load_dataset_spec(path)
        return {"class_names": list(spec.class_names), "colors": list(spec.colors),
                "traversable": list(spec.traversable), "ignore_index": spec.ignore_index}
    if path.is_file():
        names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    else:
        names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--classes {value!r} names no classes: give 'a,b,c', a text file "
                          "with one name a line, or a dataset YAML")
    return {"class_names": names}


def parse_colors(value: str) -> list[tuple[int, int, int]]:
    """--colors: '#rrggbb,#rrggbb', 'r g b; r g b', or a file with one colour a line."""
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    items = [t.strip() for t in text.replace("\n", ";").split(";") if t.strip()]
    if len(items) == 1 and items[0].count("#") > 1:
        items = [t.strip() for t in items[0].split(",")]
    colors = []
    for item in items:
        try:
            if item.startswith("#") and len(item) == 7:
                colors.append(tuple(int(item[k:k + 2], 16) for k in (1, 3, 5)))
            else:
                rgb = tuple(int(v) for v in item.replace(",", " ").split())
                if len(rgb) != 3:
                    raise ValueError(item)
                colors.append(rgb)
        except ValueError:
            raise ConfigError(f"--colors: {item!r} is not a colour: use '#rrggbb' or 'r g b' "
                              "(0..255), one per class") from None
    return colors  # type: ignore[return-value]


def parse_floats(value: str, flag: str, count: int = 3) -> tuple[float, ...]:
    """'0.485,0.456,0.406' (or one value for all channels); fractions like 1/255 allowed."""
    try:
        vals = tuple(_fraction(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {value!r} must be {count} numbers, e.g. 0.5,0.5,0.5") from None
    if len(vals) == 1:
        vals = vals * count
    if len(vals) != count:
        raise ConfigError(f"{flag} {value!r} must be {count} numbers (one per channel)")
    return vals


def _fraction(text: str) -> float:
    num, _, den = text.strip().partition("/")
    return float(num) / float(den) if den else float(num)


def parse_size(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--input-size {value!r} must be HxW, e.g. 512x1024") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"--input-size {value!r} must be positive")
    return h, w


def class_ids(items: list[str], names: list[str], flag: str) -> list[int]:
    """Class names or ids -> ids, refusing unknown ones with the known names."""
    ids = []
    for item in items:
        if item.strip().isdigit() and int(item) < len(names):
            ids.append(int(item))
        elif item.strip() in names:
            ids.append(names.index(item.strip()))
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"{flag}: {item!r} is neither a class name nor an id of this "
                              f"model (classes: {shown})")
    return ids


def pick_output(outputs: dict[str, np.ndarray], wanted: str | None, model: str) -> str:
    """The output to read: --output, the only output, or a conventional name."""
    names = list(outputs)
    if wanted:
        if wanted not in outputs:
            raise ConfigError(f"{model} has no output {wanted!r}: pass --output with one of "
                              f"{', '.join(names)}")
        return wanted
    if len(names) == 1:
        return names[0]
    for name in PREFERRED_OUTPUTS:
        if name in outputs:
            return name
    raise ConfigError(f"{model} has outputs {', '.join(names)}: say which holds the "
                      "segmentation with --output NAME")


def read_groups(path: str) -> list[dict[str, Any]]:
    """A groups YAML: ``groups: [{name, classes: [names or ids] | rest, color, traversable}]``."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--groups {path} not found: pass a YAML file (see docs/models.md, "
                          "'Class groups')")
    d = yaml.safe_load(p.read_text())
    groups = d.get("groups") if isinstance(d, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "name" in g
                                               for g in groups):
        raise ConfigError(f"--groups {path}: expected 'groups: [{{name: floor, classes: "
                          "[road, sidewalk], traversable: true}}, ...]'")
    return groups


def build_groups(groups: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Groups YAML entries -> the card's ``groups`` (names, colors, traversable, of_class)."""
    of_class = [-1] * len(names)
    rest = None
    for g_id, g in enumerate(groups):
        members = g.get("classes", [])
        if members == "rest":
            rest = g_id
            continue
        for c in class_ids([str(m) for m in members], names, f"--groups {g['name']}"):
            if of_class[c] != -1:
                raise ConfigError(f"--groups: class {names[c]!r} is in two groups: list it once")
            of_class[c] = g_id
    unlisted = [names[c] for c, g in enumerate(of_class) if g == -1]
    if unlisted and rest is None:
        raise ConfigError(f"--groups: classes {unlisted[:8]} are in no group: list them, or "
                          "give one group 'classes: rest'")
    palette = default_colors([str(g["name"]) for g in groups])
    return {"names": [str(g["name"]) for g in groups],
            "colors": [tuple(g.get("color", palette[i])) for i, g in enumerate(groups)],
            "traversable": [i for i, g in enumerate(groups) if g.get("traversable")],
            "of_class": [rest if g == -1 else g for g in of_class]}


def load_json_card(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--from {path} not found: pass a card JSON (`seg-ros info MODEL "
                          "--json` prints one)")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"--from {path} is not valid JSON ({e})") from None


def detect_output(arr: np.ndarray, kind: str, layout: str, n_classes: int | None,
                  input_size: tuple[int, int], model: str) -> tuple[str, str, str]:
    """(output_kind, layout, why) of one output array; 'auto' decided from its dtype, rank,
    channel count and, for one channel, the values of the probe run. Ambiguity is a
    ConfigError naming the flag to pass."""
    asked = kind
    if kind == "auto":
        kind = _detect_kind(arr, layout, n_classes, input_size, model)
    if kind == "labels":  # (1, h, w, 1) ids are recorded as NHWC, as they are
        lay = (_single_channel_layout(arr) or "nchw") if layout == "auto" else layout
        return kind, lay, f"labels ({arr.dtype}, {lay.upper()})"
    if arr.dtype.kind not in "f":
        raise ConfigError(f"{model}: output {arr.shape} holds {arr.dtype}, so it is a label map, "
                          f"not {kind}: pass --output-kind labels (or --output NAME of the "
                          "scores)")
    if arr.ndim not in (3, 4) and not (kind == "sigmoid" and arr.ndim == 2):
        raise ConfigError(f"{model}: output {arr.shape} is not class scores (N, C, h, w) or "
                          "(N, h, w, C): pass --output NAME of the score output")
    if layout == "auto":
        layout = _single_channel_layout(arr) or _detect_layout(
            arr.shape if arr.ndim == 4 else (1, *arr.shape), n_classes, input_size, model)
    if kind == "sigmoid" or (kind == "logits" and _channels(arr, layout) == 1):
        return kind, layout, _binary_why(arr, kind, asked)
    channels = _channels(arr, layout)
    hw = arr.shape[-3:-1] if layout == "nhwc" else arr.shape[-2:]
    stride = input_size[0] / hw[0]
    return kind, layout, (f"{kind}, {layout.upper()}, {channels} channels at "
                          f"{hw[0]}x{hw[1]} (stride {stride:g})")


def _channels(arr: np.ndarray, layout: str) -> int:
    if arr.ndim == 2:
        return 1
    return int(arr.shape[-1] if layout == "nhwc" and arr.ndim == 4 else arr.shape[-3])


def _single_channel_layout(arr: np.ndarray) -> str | None:
    """The layout of a one-channel output from where its 1 is: (1, 1, h, w) NCHW, (1, h, w, 1)
    NHWC; None when it is not a one-channel output."""
    if arr.ndim == 4 and arr.shape[1] == 1 and arr.shape[3] != 1:
        return "nchw"
    if arr.ndim == 4 and arr.shape[3] == 1 and arr.shape[1] != 1:
        return "nhwc"
    return "nchw" if arr.ndim in (2, 3) and (arr.ndim == 2 or arr.shape[0] == 1) else None


def _binary_why(arr: np.ndarray, kind: str, asked: str) -> str:
    """What a one-channel output was taken for, with the values that decided it."""
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    seen = f"values {lo:.3g}..{hi:.3g} in the probe run"
    if kind == "logits":
        what = "binary logits, one channel: foreground where logit > logit(threshold)"
        because = "" if asked != "auto" else f" ({seen}: outside 0..1, so not probabilities)"
    else:
        what = "sigmoid, one channel: foreground probability above the threshold"
        because = "" if asked != "auto" else (f" ({seen}: within 0..1; pass --output-kind "
                                              "logits if they are raw logits)")
    return what + because


def _detect_kind(arr: np.ndarray, layout: str, n_classes: int | None,
                 input_size: tuple[int, int], model: str) -> str:
    if arr.dtype.kind in "iub":
        return "labels"
    single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[0] == 1) or \
        (arr.ndim == 4 and 1 in (arr.shape[1], arr.shape[3]))
    if not single and arr.ndim not in (3, 4):
        raise ConfigError(f"{model}: output {arr.shape} is not class scores (N, C, h, w) or "
                          "(N, h, w, C): pass --output NAME of the segmentation output")
    if single:  # probabilities stay in 0..1; logits of any trained model leave it
        finite = arr[np.isfinite(arr)]
        inside = finite.size > 0 and finite.min() >= 0.0 and finite.max() <= 1.0
        return "sigmoid" if inside else "logits"
    shape = arr.shape if arr.ndim == 4 else (1, *arr.shape)
    lay = layout if layout != "auto" else _detect_layout(shape, n_classes, input_size, model)
    axis = -1 if lay == "nhwc" else -3
    sums = arr.sum(axis=axis)
    if arr.min() >= 0.0 and arr.max() <= 1.0 and np.allclose(sums, 1.0, atol=1e-3):
        return "probabilities"
    return "logits"


def _detect_layout(shape: tuple[int, ...], n_classes: int | None,
                   input_size: tuple[int, int], model: str) -> str:
    """NCHW or NHWC: the channel dim is the one equal to the class count, else the one whose
    other two dims have the input's aspect ratio."""
    by_count = [lay for lay, c in (("nchw", shape[1]), ("nhwc", shape[3])) if c == n_classes]
    if len(by_count) == 1:
        return by_count[0]
    aspect = input_size[0] / input_size[1]

    def fits(h: int, w: int) -> bool:
        return w > 0 and abs(h / w - aspect) < 0.05 * aspect and h <= input_size[0]

    by_shape = [lay for lay, (h, w) in (("nchw", shape[2:]), ("nhwc", shape[1:3])) if fits(h, w)]
    if len(by_shape) == 1:
        return by_shape[0]
    raise ConfigError(f"{model}: cannot tell whether output {shape} is NCHW or NHWC: pass "
                      "--layout nchw or --layout nhwc (and --classes)")
