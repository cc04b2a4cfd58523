"""Checking a model card against the outputs a graph really has (names, dtypes, channels).

Shared by the backends so every one refuses a wrong card with the same one-line error that
names the ``seg-ros card`` flag fixing it. Shapes hold ``None`` for dimensions the graph leaves
dynamic; callers that can run the graph once pass the real shapes instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard


@dataclass(frozen=True)
class OutputSpec:
    """One graph output: name, shape (None = dynamic dimension) and numpy dtype kind."""

    name: str
    shape: tuple[int | None, ...]
    kind: str  # numpy dtype kind: "f" float, "i" / "u" integer, "b" bool


def ort_kind(type_str: str) -> str:
    """numpy dtype kind of an onnxruntime type string such as ``tensor(float)``."""
    t = type_str.removeprefix("tensor(").removesuffix(")")
    if t in ("float", "float16", "double", "bfloat16"):
        return "f"
    if t.startswith("uint"):
        return "u"
    if t.startswith("int"):
        return "i"
    return "b" if t == "bool" else "?"


def score_channels(card: ModelCard, shape: tuple[int | None, ...]) -> int | None:
    """Channel count of a score output (None when dynamic or the rank is not 3/4)."""
    if len(shape) not in (3, 4):
        return None
    return shape[-1] if card.layout == "nhwc" else shape[-3]


def check_card_outputs(card: ModelCard, outputs: list[OutputSpec], source: str) -> None:
    """Raise EngineError when the card's output is absent, of the wrong type or of another
    class count than the card lists."""
    by_name = {o.name: o for o in outputs}
    out = by_name.get(card.output)
    if out is None:
        raise EngineError(
            f"{source}: the card reads output {card.output!r} but the graph outputs "
            f"{sorted(by_name)}: fix it with `seg-ros card {source} --output NAME`")
    fix = f"fix it with `seg-ros card {source} --output-kind KIND`"
    if card.output_kind == "labels":
        if out.kind not in "iu":
            raise EngineError(f"{source}: output {out.name!r} holds floats, not class ids: {fix} "
                              "(logits, probabilities or sigmoid)")
        return
    if out.kind != "f":
        raise EngineError(f"{source}: output {out.name!r} holds integers, so it is a label map, "
                          f"not {card.output_kind}: {fix} (labels)")
    if card.output_kind == "sigmoid":
        if len(out.shape) == 4 and 1 not in (out.shape[1], out.shape[3]):
            raise EngineError(f"{source}: output {out.name!r} {out.shape} has more than one "
                              f"channel, so it is not a sigmoid mask: {fix} (logits)")
        return
    channels = score_channels(card, out.shape)
    if len(out.shape) not in (3, 4):
        raise EngineError(f"{source}: output {out.name!r} has shape {out.shape}, not class "
                          f"scores (N, C, h, w) or (N, h, w, C): {fix}")
    if channels == 1:
        if card.output_kind == "probabilities":
            raise EngineError(f"{source}: output {out.name!r} {out.shape} has one channel: a "
                              f"foreground probability, {fix} (sigmoid)")
        if card.num_classes != 2:
            raise EngineError(
                f"{source}: output {out.name!r} {out.shape} is one channel of binary logits, "
                f"so the model has 2 classes but its card lists {card.num_classes}: fix it "
                f"with `seg-ros card {source} --classes background,NAME`")
        return
    if channels is not None and channels != card.num_classes:
        raise EngineError(
            f"{source}: the model outputs {channels} classes but its card lists "
            f"{card.num_classes} class_names ({card.layout} {out.shape}): fix it with "
            f"`seg-ros card {source} --classes ...` (or --layout if the channels are elsewhere)")
