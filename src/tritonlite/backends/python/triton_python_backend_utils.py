"""Triton's ``triton_python_backend_utils`` API, for ``model.py`` files that run unmodified.

tritonlite installs this module as ``sys.modules["triton_python_backend_utils"]`` before it
imports a model, so ``import triton_python_backend_utils as pb_utils`` works as in Triton.
Tensors are numpy arrays held in-process: there is no stub process and no copy.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tritonlite.statistics import custom_metrics as _custom

_log = logging.getLogger("tritonlite.python_model")

# --- flags -----------------------------------------------------------------------------------

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

# --- data types --------------------------------------------------------------------------------

# Numeric codes of the config DataType enum, as the python backend uses them.
TYPE_INVALID, TYPE_BOOL, TYPE_UINT8, TYPE_UINT16, TYPE_UINT32, TYPE_UINT64 = 0, 1, 2, 3, 4, 5
TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64 = 6, 7, 8, 9
TYPE_FP16, TYPE_FP32, TYPE_FP64, TYPE_STRING, TYPE_BF16 = 10, 11, 12, 13, 14

TRITON_STRING_TO_NUMPY: dict[str, Any] = {
    "TYPE_BOOL": bool,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

_CODE_BY_STRING = {
    "TYPE_BOOL": TYPE_BOOL, "TYPE_UINT8": TYPE_UINT8, "TYPE_UINT16": TYPE_UINT16,
    "TYPE_UINT32": TYPE_UINT32, "TYPE_UINT64": TYPE_UINT64, "TYPE_INT8": TYPE_INT8,
    "TYPE_INT16": TYPE_INT16, "TYPE_INT32": TYPE_INT32, "TYPE_INT64": TYPE_INT64,
    "TYPE_FP16": TYPE_FP16, "TYPE_FP32": TYPE_FP32, "TYPE_FP64": TYPE_FP64,
    "TYPE_STRING": TYPE_STRING, "TYPE_BF16": TYPE_BF16,
}  # fmt: skip
_NUMPY_BY_CODE = {code: TRITON_STRING_TO_NUMPY.get(name) for name, code in _CODE_BY_STRING.items()}
_CODE_BY_NUMPY = {np.dtype(t): code for code, t in _NUMPY_BY_CODE.items() if t is not None}
_WIRE_BY_CODE = {code: ("BYTES" if name == "TYPE_STRING" else name[5:]) for name, code in _CODE_BY_STRING.items()}
_CODE_BY_WIRE = {wire: code for code, wire in _WIRE_BY_CODE.items()}


def triton_string_to_numpy(triton_type_string: str) -> Any:
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def triton_to_numpy_type(data_type: int) -> Any:
    return _NUMPY_BY_CODE.get(data_type)


def numpy_to_triton_type(data_type: Any) -> int | None:
    dtype = np.dtype(data_type)
    if dtype.kind in ("O", "S", "U"):
        return TYPE_STRING
    return _CODE_BY_NUMPY.get(dtype)


def serialize_byte_tensor(input_tensor: np.ndarray) -> np.ndarray:
    """Length-prefixed serialization of a BYTES tensor, as one bytes object in a 0-d array."""
    if input_tensor.size == 0:
        return np.empty([0], dtype=np.object_)
    parts = []
    for item in input_tensor.reshape(-1):
        value = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(value)))
        parts.append(value)
    return np.asarray(b"".join(parts), dtype=np.object_)


def deserialize_bytes_tensor(encoded_tensor: bytes) -> np.ndarray:
    items = []
    offset = 0
    data = bytes(encoded_tensor)
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        items.append(data[offset : offset + length])
        offset += length
    return np.array(items, dtype=np.object_)


# --- errors ------------------------------------------------------------------------------------


class TritonError:
    """An error a model returns in a response (not raised)."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def __repr__(self) -> str:
        return f"TritonError({self._message!r})"


class TritonModelException(Exception):
    """Raised by BLS calls and the backend utilities on failure."""


# --- tensors -----------------------------------------------------------------------------------


class Tensor:
    """A named tensor backed by a numpy array (CPU memory)."""

    __slots__ = ("_name", "_array", "_wire")

    def __init__(self, name: str, tensor: np.ndarray, _wire: str | None = None) -> None:
        if not isinstance(tensor, np.ndarray):
            raise TritonModelException(
                f"Tensor '{name}' must be created from a numpy array, got {type(tensor).__name__}"
            )
        self._name = name
        self._array = tensor
        self._wire = _wire

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array

    def triton_dtype(self) -> int | None:
        if self._wire is not None:
            return _CODE_BY_WIRE.get(self._wire)
        return numpy_to_triton_type(self._array.dtype)

    def shape(self) -> list[int]:
        return list(self._array.shape)

    def is_cpu(self) -> bool:
        return True

    def to_dlpack(self) -> Any:
        return self._array.__dlpack__()

    @staticmethod
    def from_dlpack(name: str, capsule: Any) -> Tensor:
        if hasattr(capsule, "__dlpack__"):
            return Tensor(name, np.from_dlpack(capsule))
        raise TritonModelException("from_dlpack needs an object with __dlpack__ (e.g. a numpy or torch CPU tensor)")

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, shape={list(self._array.shape)}, dtype={self._array.dtype})"


def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: dict, name: str) -> dict | None:
    for item in model_config.get("input", []):
        if item["name"] == name:
            return item
    return None


def get_output_config_by_name(model_config: dict, name: str) -> dict | None:
    for item in model_config.get("output", []):
        if item["name"] == name:
            return item
    return None


# --- requests and responses --------------------------------------------------------------------


class InferenceResponse:
    """A model's answer to one request: output tensors, or an error."""

    __slots__ = ("_outputs", "_error", "_parameters")

    def __init__(
        self,
        output_tensors: list[Tensor] | None = None,
        error: TritonError | None = None,
        parameters: dict | str | None = None,
    ) -> None:
        self._outputs = list(output_tensors) if output_tensors is not None else []
        self._error = error
        if isinstance(parameters, str):
            parameters = json.loads(parameters) if parameters else {}
        for key, value in (parameters or {}).items():  # what the response's wire parameters can carry
            if not isinstance(key, str):
                raise TypeError(f"Expect parameters keys to have type str, found type {type(key)}")
            if not isinstance(value, bool | int | str):
                raise TypeError(f"Expect parameters values to have type bool/int/str, found type {type(value)}")
        self._parameters = parameters or {}

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def parameters(self) -> str:
        return json.dumps(self._parameters)


class InferenceResponseSender:
    """Sends responses of a decoupled model; for non-decoupled models one final response."""

    def __init__(
        self, send: Callable[[InferenceResponse | None, int], None], cancelled: Callable[[], bool] | None = None
    ) -> None:
        self._send = send
        self._cancelled = cancelled
        self._closed = False

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        """Send a response (and/or the final flag). As in Triton, sends after the request was
        cancelled are accepted; nobody reads them and they are dropped."""
        if self._closed:
            raise TritonModelException("Unable to send response. Response sender has been closed.")
        if flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL:
            self._closed = True
        self._send(response, flags)

    def is_cancelled(self) -> bool:
        """Whether the client withdrew the request (disconnected, cancelled its call, closed its stream)."""
        return self._cancelled() if self._cancelled is not None else False


class InferenceRequest:
    """A request handed to ``execute``; also a BLS request a model builds and runs with ``exec``."""

    def __init__(
        self,
        model_name: str = "",
        requested_output_names: list[str] | None = None,
        inputs: list[Tensor] | None = None,
        request_id: str = "",
        correlation_id: int | str = 0,
        flags: int = 0,
        timeout: int = 0,
        model_version: int = -1,
        parameters: dict | str | None = None,
        preferred_memory: Any = None,
        trace: Any = None,
    ) -> None:
        self._model_name = model_name
        self._requested_output_names = list(requested_output_names or [])
        self._inputs = list(inputs or [])
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._flags = flags
        self._timeout = timeout
        self._model_version = model_version
        if isinstance(parameters, dict):
            parameters = json.dumps(parameters)
        self._parameters = parameters or "{}"
        self._response_sender: InferenceResponseSender | None = None
        self._sent: list[InferenceResponse] | None = None  # what a non-decoupled model sent
        self._cancelled: Callable[[], bool] | None = None  # how a stub process learns it
        self._core: Any = None  # the server's request this one stands for (its ``cancelled`` flag)

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def requested_output_names(self) -> list[str]:
        return self._requested_output_names

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int | str:
        return self._correlation_id

    def flags(self) -> int:
        return self._flags

    def timeout(self) -> int:
        return self._timeout

    def model_name(self) -> str:
        return self._model_name

    def parameters(self) -> str:
        return self._parameters

    def is_cancelled(self) -> bool:
        """Whether the client withdrew the request (disconnected, cancelled its call, closed its stream)."""
        if self._cancelled is not None:
            return self._cancelled()
        core = self._core
        return core is not None and core.cancelled

    def get_response_sender(self) -> InferenceResponseSender:
        """The sender of this request's responses.

        A decoupled model sends zero or more responses, then the final flag. A model that is not
        decoupled may also answer through the sender (one response, with the final flag) and
        return None from ``execute``, as in Triton.
        """
        if self._response_sender is None:
            sent: list[InferenceResponse] = []
            self._sent = sent

            def collect(response: InferenceResponse | None, flags: int) -> None:
                if response is not None:
                    sent.append(response)

            self._response_sender = InferenceResponseSender(collect, self.is_cancelled)
        return self._response_sender

    def set_release_flags(self, flags: int) -> None:
        self._release_flags = flags

    def exec(self, decoupled: bool = False) -> Any:
        """Run this request on another model of the server (business logic scripting)."""
        if _bls_executor is None:
            raise TritonModelException("BLS requests can only be executed inside a running server")
        return _bls_executor(self, decoupled)

    async def async_exec(self, decoupled: bool = False) -> Any:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.exec, decoupled)


# Runs a BLS request through the server core: set by the server (``bls.Bls.install``), or in a
# stub process by ``stub.py`` (through its channel to the server).
_bls_executor: Callable[[InferenceRequest, bool], Any] | None = None


# --- custom metrics ----------------------------------------------------------------------------

MetricKind = _custom.MetricKind

# Where metrics go: the server's registry, or in a stub process one that relays to it (stub.py).
_metrics: _custom.CustomMetrics = _custom.REGISTRY
# The model instance running on this thread (its name is in the metric API's error messages).
_context = threading.local()


def _instance_name() -> str:
    return getattr(_context, "instance_name", "")


def _owned(finalizer: weakref.finalize) -> None:
    """Let the instance running on this thread release the metric when it stops (as Triton drops
    a model's metrics with its stub); the garbage collector does otherwise."""
    owned = getattr(_context, "finalizers", None)
    if owned is None:
        return
    if len(owned) >= 64 and len(owned) & (len(owned) - 1) == 0:  # forget released ones now and then
        owned[:] = [f for f in owned if f.alive]
    owned.append(finalizer)


def _api_error(what: str, exc: _custom.CustomMetricError) -> TritonModelException:
    return TritonModelException(f"{what}: Failed to process the request for model '{_instance_name()}', message: {exc}")


class MetricFamily:
    """A family of custom metrics, served on the metrics endpoint while the object lives."""

    COUNTER = MetricKind.COUNTER
    GAUGE = MetricKind.GAUGE
    HISTOGRAM = MetricKind.HISTOGRAM

    def __init__(self, name: str, description: str, kind: MetricKind) -> None:
        if not isinstance(kind, MetricKind) or not isinstance(name, str) or not isinstance(description, str):
            raise TypeError(
                "__init__(): incompatible constructor arguments. The following argument types are supported:\n"
                "    1. c_python_backend_utils.MetricFamily(name: str, description: str, "
                "kind: c_python_backend_utils.MetricKind)\n\n"
                f"Invoked with: kwargs: name={name!r}, description={description!r}, kind={kind!r}"
            )
        registry = _metrics
        try:
            self._family = registry.family(name, description, kind)
        except _custom.CustomMetricError as exc:
            raise _api_error("Error when creating MetricFamily", exc) from None
        self._registry = registry
        _owned(weakref.finalize(self, registry.release_family, self._family))

    def Metric(self, labels: dict[str, str] | None = None, buckets: list[float] | None = None) -> Metric:  # noqa: N802 (Triton's name)
        return Metric(self, labels, buckets)


class Metric:
    """One series of a family (its labels); removed when the object is collected."""

    def __init__(
        self, family: MetricFamily, labels: dict[str, str] | None = None, buckets: list[float] | None = None
    ) -> None:
        histogram = family._family.kind == MetricKind.HISTOGRAM
        if buckets is not None and not isinstance(buckets, list):
            raise TritonModelException("Failed to create metric. Buckets must be a list.")
        if histogram and buckets is None:
            raise TritonModelException("Failed to create metric. Missing required buckets.")
        if not histogram and buckets is not None:
            raise TritonModelException("Failed to create metric. Unexpected buckets found.")
        self._owner = family  # the family lives while its metrics do
        registry = family._registry
        try:
            self._series = registry.metric(family._family, dict(labels or {}), buckets)
        except _custom.CustomMetricError as exc:
            raise _api_error("Error when creating Metric", exc) from None
        self._registry = registry
        _owned(weakref.finalize(self, registry.release_metric, family._family, self._series))

    def increment(self, value: float) -> None:
        try:
            self._registry.increment(self._owner._family, self._series, float(value))
        except _custom.CustomMetricError as exc:
            raise _api_error("Failed to increment metric value", exc) from None

    def set(self, value: float) -> None:
        try:
            self._registry.set(self._owner._family, self._series, float(value))
        except _custom.CustomMetricError as exc:
            raise _api_error("Failed to set metric value", exc) from None

    def observe(self, value: float) -> None:
        try:
            self._registry.observe(self._owner._family, self._series, float(value))
        except _custom.CustomMetricError as exc:
            raise _api_error("Failed to observe metric value", exc) from None

    def value(self) -> float:
        try:
            return self._registry.value(self._owner._family, self._series)
        except _custom.CustomMetricError as exc:
            raise _api_error("Failed to get metric value", exc) from None


# --- auto-complete -----------------------------------------------------------------------------


class ModelConfig:
    """The config handed to ``auto_complete_config``: read it and add to it."""

    def __init__(self, model_config: dict | str) -> None:
        self._config = json.loads(model_config) if isinstance(model_config, str) else model_config

    def as_dict(self) -> dict:
        return self._config

    def set_max_batch_size(self, max_batch_size: int) -> None:
        current = self._config.get("max_batch_size", 0)
        if current not in (0, max_batch_size):
            raise ValueError(
                f"configuration specified max_batch_size {current}, but in auto-complete-config "
                f"function for model '{self._config.get('name')}' specified max_batch_size {max_batch_size}"
            )
        self._config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        self._config.setdefault("dynamic_batching", {})

    def add_input(self, input: dict) -> None:
        self._add_tensor("input", input)

    def add_output(self, output: dict) -> None:
        self._add_tensor("output", output)

    def _add_tensor(self, kind: str, tensor: dict) -> None:
        if "name" not in tensor:
            raise ValueError(f"{kind} in auto-complete-config function must have a 'name' property")
        tensors = self._config.setdefault(kind, [])
        for existing in tensors:
            if existing["name"] == tensor["name"]:
                for key, value in tensor.items():
                    if key in existing and existing[key] not in (value, [], "", "TYPE_INVALID") and key != "name":
                        if key == "dims" and [int(d) for d in existing[key]] == [int(d) for d in value]:
                            continue
                        raise ValueError(
                            f"unable to override {key} for {kind} '{tensor['name']}' in auto-complete-config"
                        )
                    existing[key] = value
                return
        tensors.append(dict(tensor))

    def set_model_transaction_policy(self, transaction_policy_dict: dict) -> None:
        self._config["model_transaction_policy"] = dict(transaction_policy_dict)

    def add_instance_group(self, group: dict) -> None:
        self._config.setdefault("instance_group", []).append(dict(group))


# --- logging -----------------------------------------------------------------------------------


class Logger:
    """Model logging routed to the server log."""

    INFO, WARNING, ERROR, VERBOSE = 0, 1, 2, 3

    @staticmethod
    def log(message: str, level: int = 0) -> None:
        {0: _log.info, 1: _log.warning, 2: _log.error}.get(level, _log.debug)(message)

    @staticmethod
    def log_info(message: str) -> None:
        _log.info(message)

    @staticmethod
    def log_warn(message: str) -> None:
        _log.warning(message)

    @staticmethod
    def log_error(message: str) -> None:
        _log.error(message)

    @staticmethod
    def log_verbose(message: str) -> None:
        _log.debug(message)
