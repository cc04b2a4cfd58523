"""Real card-less segmentation models in the conventions foreign models come in, and the
reference labels of each computed with onnxruntime directly (independently of seg_ros).

- ``tf_*``: graphs as tf2onnx writes a Keras / TFLite model converted without
  ``--inputs-as-nchw``: an NHWC image input, a Transpose to NCHW before the first convolution,
  a Transpose back to NHWC after the head (built with onnx.helper: TensorFlow is not installed
  here and tf2onnx needs it).
- ``torch_logits1``: a PyTorch export whose one output channel is raw logits (a model trained
  with BCEWithLogitsLoss), NCHW.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SIZE = (192, 256)  # (H, W) of the tf-style models (the frame shrinks < 2x: linear resize)
IMAGENET = (np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225],
                                                                   np.float32))
HALF = (np.full(3, 0.5, np.float32), np.full(3, 0.5, np.float32))  # -1..1, as Keras models


def tf2onnx_like(path: Path, head: str, classes: int = 3, size: tuple[int, int] = SIZE,
                 seed: int = 0, batch: str | int = "unk__612") -> Path:
    """An NHWC-input graph as tf2onnx writes it. ``head``: 'logits' (NHWC scores at stride 2),
    'logits1' (one channel of logits at stride 2, (1, h, w, 1)), 'sigmoid1' (a sigmoid mask
    resized back to the input, (1, H, W, 1)) or 'wide' (``classes`` channels, nothing else)."""
    rng = np.random.default_rng(seed)
    h, w = size
    out_c = 1 if head in ("logits1", "sigmoid1") else classes
    gain = 40.0 if head == "logits1" else 1.0  # logits of a trained binary model: far from 0..1
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.2, 8).astype(np.float32), "b1"),
             numpy_helper.from_array((gain * rng.normal(0, 0.5, (out_c, 8, 1, 1))).astype(
                 np.float32), "w2"),
             numpy_helper.from_array(np.zeros(out_c, np.float32), "b2")]
    nodes = [helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2],
                              name="model/conv2d/Conv2D__6"),
             helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], strides=[2, 2],
                              pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[1, 1])]
    last, out_hw = "c2", (h // 2, w // 2)
    if head == "sigmoid1":
        inits.append(numpy_helper.from_array(np.array([1, 1, h, w], np.int64), "full"))
        nodes += [helper.make_node("Resize", ["c2", "", "", "full"], ["up"], mode="linear"),
                  helper.make_node("Sigmoid", ["up"], ["sig"])]
        last, out_hw = "sig", (h, w)
    nodes.append(helper.make_node("Transpose", [last], ["Identity:0"], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        nodes, "tf2onnx", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT,
                                                         [batch, h, w, 3])],
        [helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT,
                                       [batch, *out_hw, out_c])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="tf2onnx", producer_version="1.16.1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def wide_output(path: Path, channels: int, size: tuple[int | str, int | str]) -> Path:
    """An NCHW model with ``channels`` score channels at the input's resolution (a 1x1 conv);
    ``size`` may name dynamic dimensions."""
    h, w = size
    inits = [numpy_helper.from_array(np.zeros((channels, 3, 1, 1), np.float32), "w")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, h, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def engine_input(rgb: np.ndarray, size: tuple[int, int], norm: tuple[np.ndarray, np.ndarray],
                 nhwc: bool) -> np.ndarray:
    """The frame as the model takes it, written independently of seg_ros."""
    x = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (x - norm[0]) / norm[1]
    return (x[None] if nhwc else x.transpose(2, 0, 1)[None]).astype(np.float32)


def reference(model: Path, rgb: np.ndarray, size: tuple[int, int],
              norm: tuple[np.ndarray, np.ndarray], nhwc_in: bool, nhwc_out: bool,
              kind: str) -> np.ndarray:
    """onnxruntime on the card-less model: the scores (or the one channel) upsampled
    bilinearly to the frame, then argmax ('scores'), or thresholded: p > 0.5 ('sigmoid'),
    logit > 0 ('logits1')."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: engine_input(rgb, size, norm, nhwc_in)})
    planes = out[0][0].transpose(2, 0, 1) if nhwc_out else out[0][0]
    frame = (rgb.shape[1], rgb.shape[0])
    up = np.stack([cv2.resize(p, frame, interpolation=cv2.INTER_LINEAR) for p in planes])
    if kind in ("sigmoid", "logits1"):
        return (up[0] > (0.5 if kind == "sigmoid" else 0.0)).astype(np.uint8)
    return up.argmax(0).astype(np.uint8)


def zero_png(path: Path, width: int, height: int, block_bytes: int = 32 << 20) -> Path:
    """A valid 8-bit grey PNG of ``width`` x ``height`` zeros written without holding it: one
    deflate block of rows is compressed once (full flush: no history across blocks) and
    repeated; the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1. 30000 x 30000 gives
    about 1 MB."""
    row = width + 1  # filter byte 0 + the row
    per = max(1, min(height, block_bytes // row))
    comp = zlib.compressobj(9)
    first = comp.compress(bytes(row * per)) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(row * per)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(bytes(row * per)) + comp.flush(zlib.Z_FULL_FLUSH) == block
    full, rest = divmod(height, per)
    tail = zlib.compressobj(9)
    tail_raw = tail.compress(bytes(row * rest)) + tail.flush(zlib.Z_FULL_FLUSH) if rest else b""
    data = first + block * (full - 1) + tail_raw[2:] + b"\x03\x00" + struct.pack(
        ">I", ((row * height) % 65521) << 16 | 1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))
    return path


def odd_model(path: Path, kind: str) -> Path:
    """Graphs onnxruntime loads that are no plain image model, for the 'no traceback' checks:
    two inputs, a uint8 input (a quantised TFLite model), an unbatched (H, W, 3) input, a grey
    (1, 1, H, W) input, a rank-5 output, a sequence output, NHWC class ids (1, h, w, 1) without
    class names, and an NHWC graph whose input dims are all dynamic."""
    f, u8 = TensorProto.FLOAT, TensorProto.UINT8
    x4 = [1, 32, 32, 3]
    if kind == "two_inputs":
        ins = [helper.make_tensor_value_info("x", f, x4), helper.make_tensor_value_info(
            "scale", f, [1])]
        nodes = [helper.make_node("Mul", ["x", "scale"], ["y"])]
        out = helper.make_tensor_value_info("y", f, x4)
    elif kind == "uint8_input":
        ins = [helper.make_tensor_value_info("x", u8, x4)]
        nodes = [helper.make_node("Cast", ["x"], ["y"], to=f)]
        out = helper.make_tensor_value_info("y", f, x4)
    elif kind in ("unbatched", "grey", "all_dynamic"):
        shapes: dict[str, list[int | str]] = {"unbatched": [32, 32, 3], "grey": [1, 1, 32, 32],
                                              "all_dynamic": ["n", "h", "w", "c"]}
        shape = shapes[kind]
        ins = [helper.make_tensor_value_info("x", f, shape)]
        nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2])] \
            if kind == "all_dynamic" else [helper.make_node("Identity", ["x"], ["t"])]
        if kind == "all_dynamic":  # a 3-channel conv: fails on an NCHW feed
            nodes.append(helper.make_node("Conv", ["t", "w"], ["y"], kernel_shape=[1, 1]))
        else:
            nodes.append(helper.make_node("Identity", ["t"], ["y"]))
        out = helper.make_tensor_value_info("y", f, None)
    elif kind == "rank5":
        ins = [helper.make_tensor_value_info("x", f, x4)]
        nodes = [helper.make_node("Unsqueeze", ["x", "axes"], ["y"])]
        out = helper.make_tensor_value_info("y", f, [1, 1, 32, 32, 3])
    elif kind == "sequence":
        ins = [helper.make_tensor_value_info("x", f, x4)]
        nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["y"])]
        out = helper.make_tensor_sequence_value_info("y", f, x4)
    elif kind == "nhwc_ids":
        ins = [helper.make_tensor_value_info("x", f, x4)]
        nodes = [helper.make_node("ArgMax", ["x"], ["y"], axis=3, keepdims=1)]
        out = helper.make_tensor_value_info("y", TensorProto.INT64, [1, 32, 32, 1])
    else:
        raise ValueError(kind)
    inits = [numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(nodes, kind, ins, [out], [t for t in inits if t.name in used])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
