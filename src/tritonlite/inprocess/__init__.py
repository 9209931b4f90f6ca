"""tritonlite in process: the server inside a Python program, without sockets, driven as Triton's
``tritonserver`` package drives it (``Server``, ``Model.infer``, ``InferenceResponse``, ``Tensor``,
the error classes). Code written for ``tritonserver`` ports by changing the import."""

from tritonlite.inprocess.errors import (
    AlreadyExistsError,
    CancelledError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    TritonError,
    UnavailableError,
    UnknownError,
    UnsupportedError,
)
from tritonlite.inprocess.frontends import KServeGrpc, KServeHttp
from tritonlite.inprocess.model import Model, ModelBatchFlag, ModelTxnPropertyFlag
from tritonlite.inprocess.options import ModelControlMode, Options, RateLimiterResource, RateLimitMode
from tritonlite.inprocess.request import InferenceRequest
from tritonlite.inprocess.response import AsyncResponseIterator, InferenceResponse, ResponseIterator
from tritonlite.inprocess.server import MetricFormat, ModelDictionary, Server
from tritonlite.inprocess.tensor import DataType, MemoryType, Tensor

__all__ = [
    "AlreadyExistsError",
    "AsyncResponseIterator",
    "CancelledError",
    "DataType",
    "InferenceRequest",
    "InferenceResponse",
    "InternalError",
    "InvalidArgumentError",
    "KServeGrpc",
    "KServeHttp",
    "MemoryType",
    "MetricFormat",
    "Model",
    "ModelBatchFlag",
    "ModelControlMode",
    "ModelDictionary",
    "ModelTxnPropertyFlag",
    "NotFoundError",
    "Options",
    "RateLimitMode",
    "RateLimiterResource",
    "ResponseIterator",
    "Server",
    "Tensor",
    "TritonError",
    "UnavailableError",
    "UnknownError",
    "UnsupportedError",
]
