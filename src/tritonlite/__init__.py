"""tritonlite: a drop-in Python implementation of NVIDIA Triton Inference Server."""

__version__ = "0.1.0"

# The Triton release whose protocol and behaviour tritonlite follows.
TRITON_COMPATIBLE_VERSION = "2.51.0"
