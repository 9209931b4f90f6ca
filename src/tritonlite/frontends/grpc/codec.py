"""ModelInferRequest/Response <-> core requests and responses.

Raw contents are viewed in place with ``numpy.frombuffer``; typed contents are converted.
Outputs are always returned as raw contents, as Triton does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritonlite.core.datatypes import (
    bytes_array,
    element_count,
    is_valid_datatype,
    numpy_dtype,
    serialize_bytes,
    tensor_from_bytes,
)
from tritonlite.core.errors import invalid_arg
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
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


def decode_request(message: pb.ModelInferRequest) -> InferRequest:
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
        elif key == "sequence_id":
            request.correlation_id = value
        elif key == "sequence_start":
            request.flags |= 1 if value else 0
        elif key == "sequence_end":
            request.flags |= 2 if value else 0
        elif key not in _RESERVED:
            request.parameters[key] = value
    raw = message.raw_input_contents
    for index, item in enumerate(message.inputs):
        if raw and index >= len(raw):
            raise invalid_arg(
                f"unable to find data for input tensor '{item.name}' for model '{message.model_name}' in request."
            )
        request.inputs.append(_decode_input(item, raw[index] if raw else None, message.model_name))
    if message.outputs:
        outputs = []
        for item in message.outputs:
            class_count = 0
            if "classification" in item.parameters:
                class_count = int(parameter_value(item.parameters["classification"]) or 0)
            if "shared_memory_region" in item.parameters:
                raise invalid_arg(f"shared memory outputs are not supported yet (output '{item.name}')")
            outputs.append(RequestedOutput(item.name, None, class_count))
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


def _decode_input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None, model: str) -> InferTensor:
    name, datatype = item.name, item.datatype
    shape = list(item.shape)
    if "shared_memory_region" in item.parameters:
        raise invalid_arg(f"shared memory inputs are not supported by tritonlite yet (input '{name}')")
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
            return InferTensor(name, datatype, shape, np.empty(shape, dtype=numpy_dtype(datatype)))
        raise invalid_arg(f"unable to find data for input tensor '{name}' for model '{model}' in request.")
    values = getattr(item.contents, field)
    if datatype == "BYTES":
        count = element_count(shape)
        if len(values) != count:
            raise invalid_arg(
                f"unexpected number of string elements {len(values)} for inference input '{name}', expecting {count}"
            )
        return InferTensor(name, datatype, shape, bytes_array(list(values), shape))
    try:
        data = np.array(values, dtype=numpy_dtype(datatype))
    except OverflowError:
        raise invalid_arg(f"value out of range for {datatype} input '{name}' for model '{model}'") from None
    if data.size == element_count(shape):
        data = data.reshape(shape)
    return InferTensor(name, datatype, shape, data)


def encode_response(response: InferResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    if response.parameters:
        for key, value in response.parameters.items():
            set_parameter(message.parameters[key], value)
    raw = message.raw_output_contents
    for tensor in response.outputs:
        out = message.outputs.add()
        out.name = tensor.name
        out.datatype = tensor.datatype
        out.shape.extend(tensor.shape)
        if tensor.datatype == "BYTES":
            raw.append(serialize_bytes(np.asarray(tensor.data)))
        else:
            raw.append(np.ascontiguousarray(tensor.data).tobytes())
    return message
