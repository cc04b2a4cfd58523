"""`seg-ros card MODEL`: write or edit the model card of any segmentation model.

ONNX: a copy with the card embedded (``--out NEW.onnx``) or the file itself (``--in-place``);
``.pt`` / ``.pt2`` / ``.engine``: the JSON sidecar next to it. What the flags do not say is read
from the graph (one run at the input size) and reported; ambiguity is an error naming the flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.errors import ConfigError, EngineError, SegRosError
from seg_ros.model_card import ModelCard, ModelCardError, read_card, sidecar_path
from seg_ros.modelprep import card_builder as cb
from seg_ros.modelprep import card_probe as cp

EXAMPLES = """\
examples, one per convention (docs/models.md: the conversions and the flags each needs):
  PyTorch export (NCHW input, logits):
    seg-ros card model.onnx --classes road,sidewalk,person --out model.carded.onnx
  TensorFlow / Keras / TFLite / TF.js via tf2onnx (NHWC input, detected; -1..1 pixels):
    seg-ros card model.onnx --classes background,person --mean 0.5 --std 0.5 --out m.onnx
  the same converted with tf2onnx --inputs-as-nchw (NCHW input, detected; 0..1 pixels):
    seg-ros card model.onnx --classes background,person --mean 0 --std 1 --out m.onnx
  a one-channel sigmoid mask, e.g. 1x256x256x1 (detected from its 0..1 values):
    seg-ros card model.onnx --classes background,person --threshold 0.5 --out m.onnx
  one channel of logits (PyTorch BCEWithLogitsLoss), foreground where logit > 0:
    seg-ros card model.onnx --output-kind logits --classes background,crack --out m.onnx
  Hugging Face SegFormer (dynamic input, logits at 1/4 size):
    seg-ros card segformer.onnx --input-size 512x512 --classes ade20k.txt --out m.onnx
  mmsegmentation via mmdeploy (argmax in the graph: class ids; mean/std in 0..255 units):
    seg-ros card end2end.onnx --input-size 512x1024 --classes cityscapes.txt --scale 1 \\
      --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375 --out m.onnx
  TorchScript / torch.export program (the card goes to model.pt.json beside it):
    seg-ros card model.pt --input-size 360x480 --classes classes.txt
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", help="model file (.onnx, .pt, .pt2; .engine: edit its sidecar)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="ONNX: write the carded copy here")
    where.add_argument("--in-place", action="store_true", help="ONNX: embed into MODEL itself")
    p.add_argument("--from", dest="from_json", help="start from this card JSON")
    p.add_argument("--name", help="model name (default: the file name)")
    p.add_argument("--classes", help="'a,b,c', a text file (one a line) or a dataset YAML")
    p.add_argument("--colors", help="'#rrggbb,...', 'r g b; ...' or a file (default: a palette)")
    p.add_argument("--traversable", help="class names or ids a robot may drive on, comma list")
    p.add_argument("--ignore-index", type=int, help="label id of 'void' in training data")
    p.add_argument("--mean", help="per-channel mean in units of pixel*scale (default ImageNet)")
    p.add_argument("--std", help="per-channel std, same units (default ImageNet)")
    p.add_argument("--scale", help="pixel factor before mean/std, e.g. 1/255 (default) or 1")
    p.add_argument("--channel-order", choices=["rgb", "bgr"])
    p.add_argument("--input-size", help="HxW the model runs at (required for dynamic inputs)")
    p.add_argument("--resize", choices=["stretch", "letterbox"])
    p.add_argument("--output", help="name of the segmentation output (default: the only one)")
    p.add_argument("--output-kind", default="auto",
                   choices=["auto", "logits", "probabilities", "labels", "sigmoid"])
    p.add_argument("--layout", default="auto", choices=["auto", "nchw", "nhwc"],
                   help="score output: channels first (nchw) or last (nhwc)")
    p.add_argument("--input-layout", default="auto", choices=["auto", "nchw", "nhwc"],
                   help="image input: (N, 3, H, W) or (N, H, W, 3) as tf2onnx leaves "
                        "TensorFlow models (auto: the 3-channel axis)")
    p.add_argument("--threshold", type=float,
                   help="one-channel outputs: foreground probability above this (0..1; for "
                        "logits: logit > log(t/(1-t)), 0.5 = logit 0)")
    p.add_argument("--groups", help="YAML mapping the classes onto fewer groups")


def run(args: argparse.Namespace) -> int:
    from seg_ros.modelprep.inspect import ModelProbe

    model = Path(args.model)
    if model.is_dir():
        raise ConfigError(f"{model} is a directory: give the model file in it (.onnx, .pt, "
                          ".pt2 or .engine)")
    _check_destination(args, model)
    base = _base_card(args, model)
    if model.suffix.lower() in ENGINE_SUFFIXES:
        return _edit_engine_card(args, model, base)
    probe = ModelProbe(model)
    try:
        return _card_probed(args, model, base, probe)
    except (SegRosError, FileNotFoundError):
        raise
    except Exception as e:  # no traceback for any model the runtime loads: one line
        raise ConfigError(f"{model}: inspecting its outputs failed ({type(e).__name__}: "
                          f"{str(e).strip()[:160]}): name them with --output, --output-kind "
                          "and --layout") from None


def _card_probed(args: argparse.Namespace, model: Path, base: dict, probe: Any) -> int:
    from seg_ros.engines.outputs import OutputSpec, check_card_outputs

    layout_in, why_in = cp.choose_layout(probe, _asked_input_layout(args, base))
    size = _input_size(args, probe, base, layout_in)
    print(f"input        {probe.inputs[0].describe()}: {why_in}")
    outputs = cp.probe_run(probe, size, layout_in, probe.static_size(layout_in) is not None,
                           str(model))
    outputs = {k: v for k, v in outputs.items() if isinstance(v, np.ndarray)}  # not sequences
    if not outputs:
        raise ConfigError(f"{model} outputs no tensor (sequences or maps only): re-export it "
                          "with the segmentation as a tensor output")
    out_name = cb.pick_output(outputs, args.output or base.get("output_name") or None,
                              str(model))
    fields = _class_fields(args, base)
    n = len(fields["class_names"]) if "class_names" in fields else None
    kind, layout, why = cb.detect_output(outputs[out_name], args.output_kind, args.layout,
                                         n, size, str(model))
    print(f"output       {out_name} {tuple(outputs[out_name].shape)}: {why}"
          + ("" if args.output_kind != "auto" else "  (auto: pass --output-kind to change)"))
    fields = _complete_classes(fields, kind, layout, outputs[out_name], str(model))
    card = _make_card(args, base, fields, model, size,
                      {"output_name": out_name, "output_kind": kind, "layout": layout,
                       "input_layout": layout_in})
    specs = [OutputSpec(k, tuple(v.shape), v.dtype.kind) for k, v in outputs.items()]
    try:
        check_card_outputs(card, specs, str(model))
    except EngineError as e:  # the card being made: name the flag, not a rewrite of MODEL
        raise ConfigError(str(e).replace(f"`seg-ros card {model} ", "`seg-ros card ... ")) \
            from None
    if kind == "labels":
        has_conf = "confidence" in outputs
        print("confidence   " + ("from the graph's 'confidence' output" if has_conf else
                                 "none: the graph outputs class ids only (export the scores "
                                 "too for a confidence image)"))
    print(f"wrote {_write(card, model, args)}")
    return 0


def _asked_input_layout(args: argparse.Namespace, base: dict) -> str:
    """--input-layout, else the layout the card being edited records, else 'auto'."""
    if args.input_layout != "auto":
        return str(args.input_layout)
    return str(base.get("input_layout", "auto"))


ENGINE_SUFFIXES = (".engine", ".plan")


def _edit_engine_card(args: argparse.Namespace, model: Path, base: dict) -> int:
    """A TensorRT engine cannot be run here to inspect it: its sidecar (or --from) is edited
    with the flags, and the engine backend checks the result against the engine at load."""
    if not base:
        raise ConfigError(f"{model.name} has no card to edit: card the .onnx it was built from "
                          "(`seg-ros card MODEL.onnx`) and rebuild it with `seg-ros build-engine`, "
                          f"or pass --from card.json")
    output = {k: v for k, v in (("output_name", args.output),
                                ("output_kind", None if args.output_kind == "auto"
                                 else args.output_kind),
                                ("layout", None if args.layout == "auto" else args.layout),
                                ("input_layout", None if args.input_layout == "auto"
                                 else args.input_layout)) if v}
    fields = _class_fields(args, base)
    card = _make_card(args, base, fields, model, tuple(base["input_size"]),  # type: ignore[arg-type]
                      output)
    if args.input_size and cb.parse_size(args.input_size) != card.input_size:
        raise ConfigError("--input-size cannot change an engine's input: rebuild the engine")
    print(f"wrote {_write(card, model, args)}")
    return 0


def _check_destination(args: argparse.Namespace, model: Path) -> None:
    if model.suffix.lower() == ".onnx" and not (args.out or args.in_place):
        raise ConfigError(f"say where the carded ONNX goes: --out NEW.onnx (a copy) or "
                          f"--in-place (rewrite {model.name})")
    if model.suffix.lower() != ".onnx" and args.out:
        raise ConfigError(f"--out is for ONNX files; the card of {model.name} goes to "
                          f"{sidecar_path(model).name} beside it (drop --out)")


def _base_card(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    """The card to edit: --from JSON, else the model's own card, else nothing."""
    if args.from_json:
        d = cb.load_json_card(args.from_json)
        ModelCard.from_dict(d, source=args.from_json)  # refuse a broken one now
        return d
    try:
        return read_card(model).to_dict()
    except ModelCardError:
        return {}


def _input_size(args: argparse.Namespace, probe: Any, base: dict, layout: str
                ) -> tuple[int, int]:
    static = probe.static_size(layout)
    if args.input_size:
        size = cb.parse_size(args.input_size)
        if static and static != size:
            raise ConfigError(f"--input-size {args.input_size} disagrees with the graph's fixed "
                              f"{layout.upper()} input {static[0]}x{static[1]}: drop "
                              "--input-size")
        return size
    if static:
        return static
    if base.get("input_size"):
        return tuple(base["input_size"])  # type: ignore[return-value]
    raise ConfigError(f"{probe.path} has a dynamic input {probe.inputs[0].describe()}: pass "
                      "--input-size HxW (the size it was trained or exported for, e.g. 512x512)")


def _class_fields(args: argparse.Namespace, base: dict) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if base.get("class_names"):
        fields.update({k: base[k] for k in ("class_names", "colors", "traversable",
                                            "ignore_index", "groups") if k in base})
    if args.classes:
        fields = cb.parse_classes(args.classes)
    return fields


def _complete_classes(fields: dict, kind: str, layout: str, arr: Any, model: str) -> dict:
    """Class names when none were given: numbered from the channel count, or the two of a
    sigmoid mask; a label map does not say how many classes it has."""
    if "class_names" in fields:
        return fields
    if kind == "sigmoid" or (kind == "logits" and cb._channels(arr, layout) == 1):
        names = ["background", "foreground"]
    elif kind == "labels":
        raise ConfigError(f"{model} outputs class ids, which do not say how many classes there "
                          "are: pass --classes (names, a text file or a dataset YAML)")
    else:
        channels = arr.shape[-1] if layout == "nhwc" else arr.shape[-3]
        names = [f"class{i}" for i in range(channels)]
    shown = ", ".join(names) if len(names) == 2 else f"{len(names)} numbered names"
    print(f"classes      {shown} (pass --classes to name them)")
    return {"class_names": names}


def _make_card(args: argparse.Namespace, base: dict, fields: dict, model: Path,
               size: tuple[int, int], output: dict[str, str]) -> ModelCard:
    names = list(fields["class_names"])
    d: dict[str, Any] = {**base, **fields, **output, "input_size": size}
    d.setdefault("name", model.stem.split(".")[0])
    if args.name:
        d["name"] = args.name
    if args.colors:
        d["colors"] = cb.parse_colors(args.colors)
    elif len(d.get("colors") or []) != len(names):
        d["colors"] = cb.default_colors(names)
        blank = [n for n, c in zip(names, d["colors"]) if c == (0, 0, 0)]
        print(f"colors       a distinct palette of {len(names)}"
              + (f", black for {', '.join(blank)}" if blank else "")
              + " (pass --colors to choose)")
    if args.colors and len(d["colors"]) != len(names):
        raise ConfigError(f"--colors gives {len(d['colors'])} colours for {len(names)} classes: "
                          "give one per class (or drop --colors for a palette)")
    if args.traversable is not None:
        d["traversable"] = cb.class_ids(args.traversable.split(","), names, "--traversable")
    if d.get("traversable") and max(d["traversable"]) >= len(names):
        print("traversable  none: the old ids do not fit the new classes (pass --traversable)")
        d["traversable"] = []
    _set_normalisation(args, d)
    if args.groups:
        d["groups"] = cb.build_groups(cb.read_groups(args.groups), names)
    elif d.get("groups") and len(d["groups"].get("of_class", [])) != len(names):
        raise ConfigError("the card's groups map another class list: pass --groups again")
    d.pop("card_version", None)
    try:
        return ModelCard.from_dict(d, source="card")
    except ModelCardError as e:
        names_flag = "seg-ros card --" in str(e)
        raise ConfigError(str(e) if names_flag else
                          f"{e} (seg-ros card flags: --classes --colors --traversable)") from None


def _set_normalisation(args: argparse.Namespace, d: dict) -> None:
    from_card = "mean" in d
    _apply_normalisation_flags(args, d)
    given = any(v is not None for v in (args.mean, args.std, args.scale, args.channel_order))
    print(f"normalise    {cp.normalisation_line(d, given, from_card)}")


def _apply_normalisation_flags(args: argparse.Namespace, d: dict) -> None:
    if args.ignore_index is not None:
        d["ignore_index"] = args.ignore_index
    if args.mean:
        d["mean"] = cb.parse_floats(args.mean, "--mean")
    if args.std:
        d["std"] = cb.parse_floats(args.std, "--std")
    if args.scale:
        d["scale"] = cb.parse_floats(args.scale, "--scale", 1)[0]
    if args.channel_order:
        d["channel_order"] = args.channel_order.upper()
    if args.resize:
        d["resize"] = args.resize
    if args.threshold is not None:
        d["threshold"] = args.threshold


def _write(card: ModelCard, model: Path, args: argparse.Namespace) -> Path:
    if model.suffix.lower() != ".onnx":
        from seg_ros.model_card import write_sidecar

        return write_sidecar(card, model)
    import onnx  # offline tool: the node itself reads the card through onnxruntime

    from seg_ros.model_card import embed_in_onnx

    proto = onnx.load(str(model))
    embed_in_onnx(card, proto)
    out = model if args.in_place else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    return out
