"""ModelInferRequest/Response <-> core requests and responses.

Raw contents are viewed in place with ``numpy.frombuffer``; typed contents are converted.
Outputs are always returned as raw contents, as Triton does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from tritonlite.core.datatypes import (
    bytes_array,
    element_count,
    is_valid_datatype,
    numpy_dtype,
    tensor_buffer,
    tensor_bytes,
    tensor_from_bytes,
)
from tritonlite.core.errors import internal, invalid_arg
from tritonlite.core.types import (
    InferRequest,
    InferResponse,
    InferTensor,
    RequestedOutput,
    apply_sequence_parameter,
)
from tritonlite.frontends.grpc.wire import split_raw
from tritonlite.protocol import grpc_service_pb2 as pb

# datatype -> the typed contents field that carries it
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_RESERVED = frozenset({"sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "binary_data_output"})


def parameter_value(param: pb.InferParameter) -> Any:
    which = param.WhichOneof("parameter_choice")
    return getattr(param, which) if which else None


def set_parameter(param: pb.InferParameter, value: Any) -> None:
    if isinstance(value, bool):
        param.bool_param = value
    elif isinstance(value, int):
        param.int64_param = value
    elif isinstance(value, float):
        param.double_param = value
    else:
        param.string_param = str(value)


def _region(parameters, name: str) -> tuple[str, int, int] | None:
    """(region, offset, byte size) when the tensor names a shared memory region."""
    if "shared_memory_region" not in parameters:
        return None
    offset = parameter_value(parameters["shared_memory_offset"]) if "shared_memory_offset" in parameters else 0
    size = parameter_value(parameters["shared_memory_byte_size"]) if "shared_memory_byte_size" in parameters else 0
    if not isinstance(offset, int) or not isinstance(size, int):
        raise invalid_arg(f"invalid shared memory offset or byte size for '{name}'")
    return parameter_value(parameters["shared_memory_region"]), offset, size


def split_infer_request(data: bytes) -> tuple[bytes, list[memoryview]]:
    """``wire.split_raw``: the request's head and its raw contents, with Triton's error for bytes
    that are no ModelInferRequest."""
    try:
        return split_raw(data)
    except DecodeError:
        raise internal("Exception deserializing request!") from None


def parse_head(head: bytes) -> pb.ModelInferRequest:
    """The head parsed by protobuf, with Triton's error for bytes that are no ModelInferRequest."""
    try:
        return pb.ModelInferRequest.FromString(head)
    except DecodeError:
        raise internal("Exception deserializing request!") from None


def decode_request(message: pb.ModelInferRequest, shm=None, raw: Sequence[Any] | None = None) -> InferRequest:
    """The core request; ``raw`` replaces the message's raw_input_contents (views from ``wire.split_request``)."""
    request = InferRequest(message.model_name, message.model_version, message.id)
    for key, param in message.parameters.items():
        value = parameter_value(param)
        if key == "priority":
            which = param.WhichOneof("parameter_choice")
            if which not in ("int64_param", "uint64_param"):
                raise invalid_arg("invalid value type for 'priority' parameter, expected int64_param or uint64_param.")
            if value < 0:
                raise invalid_arg("invalid value for 'priority', expected value >= 0.")
            request.priority = value
        elif key == "timeout":
            if param.WhichOneof("parameter_choice") != "int64_param":
                raise invalid_arg("invalid value type for 'timeout' parameter, expected int64_param.")
            request.timeout_us = max(value, 0)
        elif apply_sequence_parameter(request, key, value):
            pass
        elif key not in _RESERVED:
            request.parameters[key] = value
    if raw is None:
        raw = message.raw_input_contents
    index = 0  # raw contents belong to the inputs that are not in shared memory, in order
    for item in message.inputs:
        region = _region(item.parameters, item.name) if item.parameters else None
        if region is not None:
            if shm is None:
                raise invalid_arg(f"shared memory is not available for input '{item.name}'")
            chunk = shm.read(*region)
            shape = list(item.shape)
            data = tensor_from_bytes(chunk, item.datatype, shape, element_count(shape))
            request.inputs.append(InferTensor(item.name, item.datatype, shape, data))
            continue
        if raw and index >= len(raw):
            raise invalid_arg(
                f"unable to find data for input tensor '{item.name}' for model '{message.model_name}' in request."
            )
        request.inputs.append(_decode_input(item, raw[index] if raw else None, message.model_name))
        index += 1
    if message.outputs:
        outputs = []
        for item in message.outputs:
            class_count = 0
            if "classification" in item.parameters:
                classification = item.parameters["classification"]
                if classification.WhichOneof("parameter_choice") != "int64_param":
                    raise invalid_arg("invalid value type for 'classification' parameter, expected int64_param")
                class_count = classification.int64_param
            requested = RequestedOutput(item.name, None, class_count)
            region = _region(item.parameters, item.name) if item.parameters else None
            if region is not None:
                if shm is None:
                    raise invalid_arg(f"shared memory is not available for output '{item.name}'")
                shm.check_output(*region)
                requested.parameters = {"shm": region}
            outputs.append(requested)
        request.outputs = outputs
    return request


_DATATYPE_BY_CONTENTS = {
    "bool_contents": "BOOL",
    "int_contents": "INT32",
    "int64_contents": "INT64",
    "uint_contents": "UINT32",
    "uint64_contents": "UINT64",
    "fp32_contents": "FP32",
    "fp64_contents": "FP64",
    "bytes_contents": "BYTES",
}


MAX_DIMS = 64  # numpy's limit on an array's dimensions


def _decode_input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None, model: str) -> InferTensor:
    name, datatype = item.name, item.datatype
    shape = list(item.shape)
    if raw is not None:
        if item.HasField("contents"):
            raise invalid_arg(
                f"contents field must not be specified when using raw_input_contents for '{name}' for model '{model}'"
            )
        if not is_valid_datatype(datatype):
            raise invalid_arg(f"invalid datatype '{datatype}' of input '{name}'")
        if any(d < 0 for d in shape):
            raise invalid_arg(f"invalid shape {shape} for input '{name}': dimensions must be non-negative")
        return InferTensor(name, datatype, shape, tensor_from_bytes(raw, datatype, shape, element_count(shape)))
    field = None
    for candidate in _DATATYPE_BY_CONTENTS:
        if getattr(item.contents, candidate):
            field = candidate
            break
    expected_field = CONTENTS_FIELD.get(datatype)
    if field is not None and field != expected_field:
        wanted = datatype if is_valid_datatype(datatype) else "<invalid>"
        raise invalid_arg(
            f"unexpected explicit tensor data for input tensor '{name}' for model '{model}' of type "
            f"'{_DATATYPE_BY_CONTENTS[field]}', expected datatype '{wanted}'"
        )
    if not is_valid_datatype(datatype):
        raise invalid_arg(f"invalid datatype '{datatype}' of input '{name}'")
    if any(d < 0 for d in shape):
        raise invalid_arg(f"invalid shape {shape} for input '{name}': dimensions must be non-negative")
    if field is None:
        if element_count(shape) == 0:
            try:
                return InferTensor(name, datatype, shape, np.empty(shape, dtype=numpy_dtype(datatype)))
            except ValueError:  # a 0 among dimensions too large for numpy: Triton's byte size overflows too
                pass
        raise invalid_arg(f"unable to find data for input tensor '{name}' for model '{model}' in request.")
    values = getattr(item.contents, field)
    if datatype == "BYTES":
        count = element_count(shape)
        if len(values) != count:
            raise invalid_arg(
                f"unexpected number of string elements {len(values)} for inference input '{name}', expecting {count}"
            )
        try:
            return InferTensor(name, datatype, shape, bytes_array(list(values), shape))
        except ValueError:  # more dimensions than numpy holds (64): flat, for validation to refuse the shape
            return InferTensor(name, datatype, shape, bytes_array(list(values), [count]))
    try:
        data = np.array(values, dtype=numpy_dtype(datatype))
    except OverflowError:
        raise invalid_arg(f"value out of range for {datatype} input '{name}' for model '{model}'") from None
    if data.size == element_count(shape) and len(shape) <= MAX_DIMS:
        data = data.reshape(shape)
    return InferTensor(name, datatype, shape, data)


def encode_response(response: InferResponse, request: InferRequest | None = None, shm=None) -> pb.ModelInferResponse:
    message, raw = encode_response_parts(response, request, shm)
    message.raw_output_contents.extend(chunk if isinstance(chunk, bytes) else chunk.tobytes() for chunk in raw)
    return message


def encode_response_parts(
    response: InferResponse, request: InferRequest | None = None, shm=None
) -> tuple[pb.ModelInferResponse, list[bytes | np.ndarray]]:
    """The response without raw outputs, and those outputs (bytes or C-contiguous arrays) in order."""
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    if response.parameters:
        for key, value in response.parameters.items():
            set_parameter(message.parameters[key], value)
    raw: list[bytes | np.ndarray] = []
    regions = {}
    if request is not None and request.outputs:
        regions = {o.name: o.parameters["shm"] for o in request.outputs if o.parameters and o.parameters.get("shm")}
    for tensor in response.outputs:
        out = message.outputs.add()
        out.name = tensor.name
        out.datatype = tensor.datatype
        out.shape.extend(tensor.shape)
        region = regions.get(tensor.name)
        if region is not None:  # written into the client's region; an empty entry keeps positions aligned
            # Triton 2.51 echoes no shared_memory_* parameters on such an output: name, datatype, shape only.
            shm.write(tensor.name, region[0], region[1], region[2], tensor_bytes(tensor.datatype, tensor.data))
            raw.append(b"")
        else:
            raw.append(tensor_buffer(tensor.datatype, tensor.data))
    return message, raw
