"""``seg-ros quantize MODEL --target fp16``: the fp16 copy of a model written to a file.

The conversion itself is the TensorRT build's (:func:`seg_ros.engines.tensorrt.fp16.fp16_model`),
so a saved fp16 model and an engine built from the float model in memory compute the same graph.
"""

from __future__ import annotations

from pathlib import Path

from seg_ros.engines.tensorrt.fp16 import fp16_model
from seg_ros.errors import ConfigError
from seg_ros.model_card import embed_in_onnx, file_sha256, read_card


def write_fp16(src: str | Path, out: str | Path) -> list[str]:
    """Write the fp16 copy of ``src`` to ``out`` (card kept, its provenance saying fp16);
    returns the nodes kept fp32."""
    import onnx

    src, out = Path(src), Path(out)
    if src.suffix != ".onnx" or not src.is_file():
        raise ConfigError(f"{src} is not an .onnx file: convert the exported ONNX model")
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} would overwrite the float model: pick another name")
    card = read_card(src)
    if card.provenance.get("precision") == "int8":
        raise ConfigError(f"{src} is int8: convert the float model instead")
    model, kept = fp16_model(onnx.load(str(src)))
    embed_in_onnx(card.with_provenance(precision="fp16", fp16={
        "tool": "onnxruntime.transformers.float16.convert_float_to_float16",
        "io": "float32", "fp32_nodes": kept, "source_sha256": file_sha256(src)}), model)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    onnx.save(model, str(part))
    part.replace(out)
    return kept
