"""TensorRT backend (``platform: "tensorrt_plan"`` / ``backend: "tensorrt"``): serialized ``model.plan`` engines.

tensorrt and a CUDA binding (cuda-python or cupy) are optional extras
(``pip install tritonlite[tensorrt]``), imported only when a TensorRT model loads.
"""
