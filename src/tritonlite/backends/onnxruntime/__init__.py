"""ONNX Runtime backend (``platform: "onnxruntime_onnx"`` / ``backend: "onnxruntime"``).

onnxruntime is an optional extra (``pip install tritonlite[onnx]``, or ``[gpu]`` for
onnxruntime-gpu); it is imported only when an ONNX model loads.
"""
