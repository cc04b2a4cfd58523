"""ModelCard: what a segmentation model file says about itself.

A node needs only the model path: class names, colours, traversable classes, input size and
normalisation travel inside the model file (ONNX ``metadata_props`` under the key
``seg_ros.model_card``) or, for formats without metadata (TensorRT ``.engine``, TorchScript /
exported ``.pt``), in a JSON sidecar next to it (``model.engine`` -> ``model.engine.json``).

ROS-free and torch-free by design.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from seg_ros.errors import SegRosError

METADATA_KEY = "seg_ros.model_card"
CARD_VERSION = 2

OutputKind = Literal["logits", "probabilities", "labels", "sigmoid"]
OUTPUT_KINDS: tuple[str, ...] = ("logits", "probabilities", "labels", "sigmoid")
ChannelOrder = Literal["RGB", "BGR"]
Layout = Literal["nchw", "nhwc"]
Resize = Literal["stretch", "letterbox"]


class ModelCardError(SegRosError, ValueError):
    """A model card is missing, unreadable or inconsistent; the message names the fix."""


@dataclass(frozen=True)
class ClassGroups:
    """The model's classes mapped onto a smaller set (e.g. 150 ADE20K classes -> floor,
    obstacle, person, sky), applied by a lookup table after the argmax.

    Attributes:
        names: one name per group, index = group id.
        colors: one RGB colour (0..255) per group.
        traversable: group ids a ground robot may drive on.
        of_class: the group id of each model class (index = model class id).
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    traversable: tuple[int, ...]
    of_class: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colors", tuple(tuple(int(v) for v in c) for c in self.colors))
        object.__setattr__(self, "traversable", tuple(int(t) for t in self.traversable))
        object.__setattr__(self, "of_class", tuple(int(g) for g in self.of_class))

    def truth_table(self) -> list[int]:
        """Ground-truth class id (0..255) -> group id, everything else (void, unknown ids)
        -> 255, the grouped card's ignore index: scoring in groups maps the truth with it."""
        return [*self.of_class, *([255] * (256 - len(self.of_class)))][:256]

    def validate(self, num_classes: int) -> None:
        n = len(self.names)
        fix = "rewrite it with `seg-ros card MODEL --groups groups.yaml`"
        if n == 0 or len(self.colors) != n:
            raise ModelCardError(f"model card groups: {n} names but {len(self.colors)} colors: "
                                 f"{fix}")
        if len(self.of_class) != num_classes:
            raise ModelCardError(f"model card groups map {len(self.of_class)} classes but the "
                                 f"model has {num_classes}: {fix}")
        if any(not 0 <= g < n for g in (*self.of_class, *self.traversable)):
            raise ModelCardError(f"model card groups: a group id is outside 0..{n - 1}: {fix}")


@dataclass(frozen=True)
class ModelCard:
    """Everything a runtime needs to use a segmentation model.

    Attributes:
        name: short model name, shown in diagnostics and ``label_info``.
        class_names: one name per output class, index = class id.
        colors: one RGB colour (0..255) per class, used for colour masks and overlays.
        traversable: class ids a ground robot may drive on (floor grid "free").
        input_size: (height, width) in pixels of the engine input tensor.
        mean: per-channel mean, in the units of ``pixel * scale``, in ``channel_order``.
        std: per-channel standard deviation, same units: the engine sees
            ``(pixel * scale - mean) / std`` for 0..255 pixels.
        channel_order: channel order the engine expects ("RGB" or "BGR").
        output_kind: "logits" / "probabilities" (class scores, any stride), "labels" (the graph
            ends in argmax: integer ids, plus ``confidence`` when the graph outputs it), or
            "sigmoid" (one channel, foreground probability: two classes).
        ignore_index: label id meaning "void" in training data (not a model output).
        provenance: free-form facts about how the model was made (dataset, metrics, command).
        scale: factor from 0..255 pixels to the units of mean/std (1/255: 0..1).
        output_name: the graph output to read; "" = ``labels`` or ``logits`` by output_kind.
        layout: "nchw" or "nhwc" for score outputs (channels first or last).
        input_layout: "nchw" (N, 3, H, W: PyTorch exports) or "nhwc" (N, H, W, 3: TensorFlow,
            Keras, TFLite and TF.js models converted by tf2onnx without --inputs-as-nchw): the
            layout every engine is fed in.
        resize: "stretch" (fill the input) or "letterbox" (keep the aspect, pad, and crop the
            padding out again on the way back).
        threshold: foreground probability above which a sigmoid output says class 1.
        groups: optional mapping of the model classes onto fewer groups (see ClassGroups).
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    traversable: tuple[int, ...] = ()
    input_size: tuple[int, int] = (360, 480)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: ChannelOrder = "RGB"
    output_kind: OutputKind = "labels"
    ignore_index: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0 / 255.0
    output_name: str = ""
    layout: Layout = "nchw"
    resize: Resize = "stretch"
    threshold: float = 0.5
    groups: ClassGroups | None = None
    input_layout: Layout = "nchw"

    def __post_init__(self) -> None:
        # Normalise list-y inputs (JSON gives lists) into hashable tuples.
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "colors", tuple(tuple(int(v) for v in c) for c in self.colors))
        object.__setattr__(self, "traversable", tuple(int(t) for t in self.traversable))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "scale", float(self.scale))
        if isinstance(self.groups, dict):
            object.__setattr__(self, "groups", ClassGroups(**self.groups))
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """Shape of ``batch`` frames as the engine takes them: (N, 3, H, W) or (N, H, W, 3)."""
        h, w = self.input_size
        return (batch, h, w, 3) if self.input_layout == "nhwc" else (batch, 3, h, w)

    @property
    def output(self) -> str:
        """Name of the graph output the segmenter reads."""
        return self.output_name or ("labels" if self.output_kind == "labels" else "logits")

    def grouped(self) -> ModelCard:
        """The card as the robot sees it: the groups as classes (ids, names, colours,
        traversable; ignore index 255, see ClassGroups.truth_table) when the card has groups,
        else the card itself."""
        g = self.groups
        if g is None:
            return self
        return replace(self, class_names=g.names, colors=g.colors, traversable=g.traversable,
                       groups=None, ignore_index=255)

    def validate(self) -> None:
        """Raise ModelCardError naming the field and the fix when the card is inconsistent."""
        n = len(self.class_names)
        if n == 0:
            raise ModelCardError("model card has no class_names: list one name per output class")
        if len(self.colors) != n:
            raise ModelCardError(
                f"model card has {n} class_names but {len(self.colors)} colors: "
                "give one RGB colour per class"
            )
        for i, c in enumerate(self.colors):
            if len(c) != 3 or any(not 0 <= v <= 255 for v in c):
                raise ModelCardError(
                    f"model card colour {i} = {c} is not an RGB triple in 0..255"
                )
        bad = [t for t in self.traversable if not 0 <= t < n]
        if bad:
            raise ModelCardError(
                f"model card traversable ids {bad} are outside 0..{n - 1}: "
                "use class ids of this model"
            )
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ModelCardError(
                f"model card input_size {self.input_size} must be (height, width) > 0"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelCardError("model card mean/std must be 3 values each, std > 0")
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelCardError(
                f"model card channel_order {self.channel_order!r} must be 'RGB' or 'BGR'"
            )
        self._validate_output()
        if self.groups is not None:
            self.groups.validate(n)

    def _validate_output(self) -> None:
        if self.output_kind not in OUTPUT_KINDS:
            raise ModelCardError(f"model card output_kind {self.output_kind!r} must be one of "
                                 f"{', '.join(OUTPUT_KINDS)} (seg-ros card --output-kind)")
        if self.output_kind == "sigmoid" and self.num_classes != 2:
            raise ModelCardError(f"a sigmoid output has 2 classes (background, foreground) but "
                                 f"the card lists {self.num_classes}: pass --classes with 2 names")
        if self.layout not in ("nchw", "nhwc"):
            raise ModelCardError(f"model card layout {self.layout!r} must be 'nchw' or 'nhwc' "
                                 "(seg-ros card --layout)")
        if self.input_layout not in ("nchw", "nhwc"):
            raise ModelCardError(f"model card input_layout {self.input_layout!r} must be 'nchw' "
                                 "or 'nhwc' (seg-ros card --input-layout)")
        if self.resize not in ("stretch", "letterbox"):
            raise ModelCardError(f"model card resize {self.resize!r} must be 'stretch' or "
                                 "'letterbox' (seg-ros card --resize)")
        if not self.scale > 0:
            raise ModelCardError(f"model card scale {self.scale} must be > 0 "
                                 "(seg-ros card --scale, e.g. 1/255)")
        if not 0.0 < self.threshold < 1.0:
            raise ModelCardError(
                f"model card threshold {self.threshold} must be a probability in (0, 1), also "
                "for one-channel logits (foreground where logit > log(t / (1 - t)); 0.5 is "
                "logit 0): seg-ros card --threshold 0.5")

    def with_provenance(self, **facts: Any) -> ModelCard:
        """A copy with ``facts`` merged into provenance."""
        return replace(self, provenance={**self.provenance, **facts})

    # --- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # groups (a dataclass) becomes a plain dict
        d["card_version"] = CARD_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model card") -> ModelCard:
        d = dict(d)
        d.pop("card_version", None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelCardError(
                f"{source}: unknown fields {unknown}; known fields: {sorted(known)}"
            )
        missing = [k for k in ("name", "class_names", "colors") if k not in d]
        if missing:
            raise ModelCardError(f"{source}: missing required fields {missing}")
        try:
            return cls(**d)
        except ModelCardError as e:
            raise ModelCardError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ModelCardError(f"{source}: malformed value ({e})") from None

    @classmethod
    def from_json(cls, text: str, source: str = "model card") -> ModelCard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelCardError(f"{source}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ModelCardError(f"{source}: expected a JSON object")
        return cls.from_dict(d, source)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a model file (read in 1 MiB chunks): ties a derived model or engine to
    the exact file it came from."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(model_path: str | Path) -> Path:
    """JSON sidecar of a model file: ``model.engine`` -> ``model.engine.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def write_sidecar(card: ModelCard, model_path: str | Path) -> Path:
    path = sidecar_path(model_path)
    path.write_text(card.to_json() + "\n")
    return path


def read_sidecar(model_path: str | Path) -> ModelCard:
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ModelCardError(
            f"{model_path} has no model card: expected the JSON sidecar {path} "
            "(write it with `seg-ros card` or keep the one made with the model)"
        )
    return ModelCard.from_json(path.read_text(), source=str(path))


def embed_in_onnx(card: ModelCard, onnx_model: Any) -> None:
    """Store ``card`` in an ``onnx.ModelProto``'s metadata_props (replacing an older card)."""
    props = onnx_model.metadata_props
    for i in reversed(range(len(props))):
        if props[i].key == METADATA_KEY:
            del props[i]
    entry = props.add()
    entry.key = METADATA_KEY
    entry.value = card.to_json()


def card_from_onnx_metadata(metadata: dict[str, str], source: str) -> ModelCard:
    """Card from an ONNX metadata map (``onnx`` metadata_props or onnxruntime custom map)."""
    if METADATA_KEY not in metadata:
        raise ModelCardError(
            f"{source} has no model card (metadata key {METADATA_KEY!r}): export it with "
            f"`seg-ros export`, or write one with `seg-ros card {source} --out CARDED.onnx` "
            f"(`seg-ros info {source}` shows what it needs)"
        )
    return ModelCard.from_json(metadata[METADATA_KEY], source=source)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata_props, read by onnxruntime (the ``onnx`` package is for the
    offline tools only; a robot needs onnxruntime alone)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(e).strip().splitlines()[0][:160]
        raise ModelCardError(
            f"{path} is not a readable ONNX file ({first}): re-export or re-copy it") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_card(model_path: str | Path) -> ModelCard:
    """Read the card of any supported model file (ONNX metadata, else the JSON sidecar)."""
    path = Path(model_path)
    if path.is_dir():
        raise ModelCardError(f"{path} is a directory: give the model file in it (.onnx, "
                             ".engine, .pt or .pt2)")
    if not path.is_file():
        raise ModelCardError(f"model file {path} does not exist: check the model path")
    if path.suffix == ".onnx":
        meta = onnx_metadata(path)
        if METADATA_KEY not in meta and sidecar_path(path).is_file():
            return read_sidecar(path)
        return card_from_onnx_metadata(meta, str(path))
    return read_sidecar(path)


CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
CAMVID_COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


def camvid_card(**overrides: Any) -> ModelCard:
    """The 11-class CamVid (SegNet split) card: road and pavement traversable, 11 = void."""
    base: dict[str, Any] = dict(
        name="camvid",
        class_names=CAMVID_CLASSES,
        colors=CAMVID_COLORS,
        traversable=(3, 4),
        input_size=(360, 480),
        ignore_index=11,
    )
    base.update(overrides)
    return ModelCard(**base)
