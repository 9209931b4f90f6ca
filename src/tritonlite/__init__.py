"""tritonlite: a drop-in Python implementation of NVIDIA Triton Inference Server."""

__version__ = "0.1.0"

# The Triton release whose protocol and behaviour tritonlite follows.
TRITON_COMPATIBLE_VERSION = "2.51.0"


# the in-process API (tritonlite.inprocess), importable from here: tritonlite.Server, ...
_INPROCESS = frozenset({
    "AlreadyExistsError", "AsyncResponseIterator", "CancelledError", "DataType", "InferenceRequest",
    "InferenceResponse", "InternalError", "InvalidArgumentError", "KServeGrpc", "KServeHttp", "MemoryType",
    "MetricFormat", "Model", "ModelBatchFlag", "ModelControlMode", "ModelDictionary", "ModelTxnPropertyFlag",
    "NotFoundError", "Options", "RateLimitMode", "RateLimiterResource", "ResponseIterator", "Server", "Tensor",
    "TritonError", "UnavailableError", "UnknownError", "UnsupportedError",
})  # fmt: skip


def __getattr__(name: str):
    """The in-process API's names, imported on first use so that ``import tritonlite`` stays light."""
    if name not in _INPROCESS:
        raise AttributeError(f"module 'tritonlite' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module("tritonlite.inprocess"), name)
