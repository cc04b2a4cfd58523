"""The TensorRT backend, 10.3 .. 11.x: the engine (:mod:`.engine`) and what it needs to exist.

``engine`` runs a deserialized plan; ``cache`` keys built plans by model, precision, GPU and
TensorRT version; ``build`` makes one from ONNX (``options`` checks the arguments, ``plan`` picks
the precision path this TensorRT supports, ``graph`` prepares the ONNX for the parser, ``fp16``
converts it for strongly typed builds, ``calibrator`` feeds implicit int8); ``bindings`` maps
tensors to numpy; ``cuda_runtime`` / ``cuda_buffers`` give pinned host + device buffers.

Nothing here imports tensorrt at module level, so the checks run on any machine; importing this
package imports none of its modules (``seg_ros.engines`` loads ``engine`` only when asked).
"""
