"""PyTorch backend (``platform: "pytorch_libtorch"`` / ``backend: "pytorch"``): TorchScript ``model.pt``.

torch is an optional extra (``pip install tritonlite[torch]``); it is imported only when a
PyTorch model loads.
"""
