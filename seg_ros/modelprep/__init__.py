"""Making a model ready, offline: model cards built from flags and probed from the graph
(``card_builder``, ``card_probe``, ``inspect``) and fp16 model files (``fp16``).

It imports engines (to run a probe, to reuse the graph conversions the TensorRT build does in
memory); no engine and nothing in the node imports it. int8 quantization and calibration stay
in ``seg_ros.engines``: a TensorRT engine opened at int8 from a float model runs them itself.
"""
