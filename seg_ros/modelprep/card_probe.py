"""The probe run behind ``seg-ros card``: which input layout and size a card-less graph takes,
refused from its declared shapes before anything is allocated when it is too large, and run
once; a size the graph cannot run is answered with the nearest sizes it can (one line).
ROS-free and torch-free (a torch program is run through ``seg_ros.engines.torch``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from seg_ros.errors import ConfigError, SegRosError

MAX_INPUT_PIXELS = 4096 * 4096  # 16.8 MP: the probe batch alone is then 201 MB of float32
MAX_OUTPUT_BYTES = 1 << 30  # 1 GiB of outputs for one frame: 150 classes at 1024x1748
STRIDES = (8, 16, 32, 64, 128)  # multiples tried when a dynamic graph fails at a size


def choose_layout(probe: Any, asked: str) -> tuple[str, str]:
    """(input layout, why): --input-layout, else the graph's 3-channel axis."""
    check_inputs(probe)
    shape = probe.inputs[0].shape
    if asked != "auto":
        c = probe.channel_axis_fixed(asked)
        if c is not None and c != 3:
            other = "nhwc" if asked == "nchw" else "nchw"
            raise ConfigError(f"--input-layout {asked}: the graph's input "
                              f"{probe.inputs[0].describe()} has {c} on that channel axis, not "
                              f"3: pass --input-layout {other} (or drop it: detected)")
        return asked, f"{asked.upper()} (--input-layout)"
    if len(shape) != 4:
        raise ConfigError(f"{probe.path}: input {probe.inputs[0].describe()} is not an image "
                          "batch (N, 3, H, W) or (N, H, W, 3): re-export it with one image "
                          "input")
    layout = probe.input_layout()
    if layout == "nhwc":
        return layout, ("NHWC, channels last (auto: a 3-channel last axis, as tf2onnx writes "
                        "TensorFlow models; pass --input-layout nchw to change)")
    if probe.channel_axis_fixed("nchw") not in (3, None):
        raise ConfigError(f"{probe.path}: input {probe.inputs[0].describe()} has no 3-channel "
                          "axis: seg_ros feeds RGB/BGR images; pass --input-layout nchw|nhwc "
                          "if the channel axis is dynamic, else re-export with an image input")
    return layout, "NCHW, channels first (auto; pass --input-layout nhwc to change)"


def check_inputs(probe: Any) -> None:
    """One float image input: what every engine feeds (a second input, an integer or float16
    input would fail the probe run with the runtime's own message)."""
    if len(probe.inputs) != 1:
        names = ", ".join(t.describe() for t in probe.inputs)
        raise ConfigError(f"{probe.path} has {len(probe.inputs)} inputs ({names}); seg_ros "
                          "feeds one image: re-export it with the image as its only input "
                          "(constants folded in)")
    dtype = probe.inputs[0].dtype
    if dtype not in ("tensor(float)", "float32"):
        raise ConfigError(f"{probe.path}: input {probe.inputs[0].describe()} is not float32, "
                          "which every engine feeds: re-export it with a float32 input (a "
                          "quantised TFLite model: convert the float one)")


def check_input_size(size: tuple[int, int], model: str) -> None:
    """Refuse an input size whose probe batch alone would be hundreds of MB."""
    if size[0] * size[1] > MAX_INPUT_PIXELS:
        raise ConfigError(f"{model}: input {size[0]}x{size[1]} is over the limit of "
                          f"{MAX_INPUT_PIXELS / 1e6:.1f} megapixels (4096x4096) a segmentation "
                          "input may have here: export the model at the size it runs at, or "
                          "pass a smaller --input-size for a dynamic input")


def check_output_size(probe: Any, size: tuple[int, int], layout: str, model: str) -> None:
    """Refuse from the graph's output shapes at ``size`` (shape inference) when one run's
    outputs would exceed MAX_OUTPUT_BYTES (e.g. 10000 score channels at full resolution)."""
    need = probe.output_floor_bytes(size, layout)
    if need > MAX_OUTPUT_BYTES:
        shapes = ", ".join(o.describe() for o in probe.outputs)
        raise ConfigError(f"{model}: its outputs ({shapes}) take at least {need / 2**30:.1f} "
                          f"GiB per frame, over the limit of {MAX_OUTPUT_BYTES / 2**30:.0f} "
                          "GiB: export fewer classes or a lower-resolution output (or pass "
                          "--output NAME of a smaller one)")


def probe_run(probe: Any, size: tuple[int, int], layout: str, static: bool, model: str
              ) -> dict[str, np.ndarray]:
    """One run at ``size``; a failure becomes one ConfigError line: the sizes nearby that a
    dynamic graph runs at, or for a fixed one the flags that may fix it."""
    check_input_size(size, model)
    check_output_size(probe, size, layout, model)
    try:
        return probe.run(size, layout)
    except SegRosError:
        raise
    except Exception as e:  # onnxruntime / torch raise their own types
        why = _first_line(e)
    hw = f"{size[0]}x{size[1]}"
    other = "nhwc" if layout == "nchw" else "nchw"
    if probe.channel_axis_fixed(layout) is None and _runs(probe, size, other):
        raise ConfigError(f"{model} does not run on a {layout.upper()} input ({why}) but does "
                          f"on {other.upper()}: pass --input-layout {other}") from None
    if static:
        raise ConfigError(f"{model} does not run on a {layout.upper()} input at its own size "
                          f"{hw} ({why}): pass --input-layout {other} if its channel axis is "
                          "elsewhere, else re-export it") from None
    works = working_sizes(probe, size, layout)
    if works:
        raise ConfigError(f"{model} cannot run at {hw} ({why}): it runs at {works}: pass "
                          f"--input-size {works.split(' ')[0]}") from None
    raise ConfigError(f"{model} cannot run at {hw} ({why}), nor at nearby multiples of "
                      f"{', '.join(map(str, STRIDES))}: pass --input-size at the size it was "
                      "exported for (and --input-layout if the channels are elsewhere)") from None


def working_sizes(probe: Any, size: tuple[int, int], layout: str) -> str:
    """'480x640 or 448x608 (multiples of 32)': the nearest sizes up and down, at the smallest
    multiple that runs; '' when none does."""
    first = ""
    for m in STRIDES:  # the smallest multiple at which both neighbours run is the stride
        up = tuple(-(-v // m) * m for v in size)
        down = tuple(max(m, v // m * m) for v in size)
        fine = [s for s in dict.fromkeys((up, down)) if _runs(probe, s, layout)]
        text = " or ".join(f"{h}x{w}" for h, w in fine) + f" (multiples of {m})"
        if len(fine) == len(dict.fromkeys((up, down))):
            return text
        first = first or (text if fine else "")
    return first


def _runs(probe: Any, size: tuple[int, ...], layout: str) -> bool:
    if size[0] * size[1] > MAX_INPUT_PIXELS:
        return False
    try:
        probe.run(size, layout)
        return True
    except Exception:  # any runtime failure: this size does not work
        return False


def _first_line(e: BaseException) -> str:
    """The runtime's reason, short: onnxruntime's node and the end of its message."""
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    node = re.search(r"running (\S+) node\. Name:'([^']*)'", line)
    if node is None:
        return line[:160]
    tail = line[-80:].split(" ", 1)[-1]  # the end of the message, from a word boundary
    return f"its {node.group(1)} node {node.group(2)!r} fails: ...{tail}"


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def normalisation_line(d: dict[str, Any], flags_given: bool, from_card: bool) -> str:
    """What the card will feed the model, and how to change it (announced at card time: a
    wrong normalisation runs without error and segments badly)."""
    mean, std = tuple(d.get("mean", IMAGENET[0])), tuple(d.get("std", IMAGENET[1]))
    scale = float(d.get("scale", 1 / 255))
    units = "pixel/255" if abs(scale * 255 - 1) < 1e-9 else f"pixel x {scale:g}"
    text = (f"({units} - mean) / std, mean {','.join(f'{v:g}' for v in mean)}, std "
            f"{','.join(f'{v:g}' for v in std)}, {d.get('channel_order', 'RGB')}")
    if flags_given:
        return text + " (as passed)"
    if from_card:
        return text + " (from the card)"
    return (text + " (default: ImageNet's; for models trained otherwise pass --mean/--std/"
            "--scale, e.g. --mean 0.5 --std 0.5 for -1..1, --mean 0 --std 1 for 0..1, "
            "--scale 1 --mean 0 --std 1 for 0..255, --channel-order bgr for BGR)")
