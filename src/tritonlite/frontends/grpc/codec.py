"""ModelInferRequest/Response <-> core requests and responses.

Raw contents are viewed in place with ``numpy.frombuffer``; typed contents are converted.
Outputs are always returned as raw contents, as Triton does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritonlite.core.datatypes import (
    ELEMENT_SIZE,
    bytes_array,
    deserialize_bytes,
    element_count,
    is_valid_datatype,
    numpy_dtype,
    serialize_bytes,
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
            request.priority = int(value or 0)
        elif key == "timeout":
            request.timeout_us = int(value or 0)
        elif key == "sequence_id":
            request.correlation_id = value
        elif key == "sequence_start":
            request.flags |= 1 if value else 0
        elif key == "sequence_end":
            request.flags |= 2 if value else 0
        elif key not in _RESERVED:
            request.parameters[key] = value
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise invalid_arg(
            f"expected {len(message.inputs)} raw input contents for model '{message.model_name}', got {len(raw)}"
        )
    for index, item in enumerate(message.inputs):
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


def _decode_input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None, model: str) -> InferTensor:
    name, datatype = item.name, item.datatype
    shape = list(item.shape)
    if not is_valid_datatype(datatype):
        raise invalid_arg(f"invalid datatype '{datatype}' of input '{name}'")
    if any(d < 0 for d in shape):
        raise invalid_arg(f"invalid shape {shape} for input '{name}': dimensions must be non-negative")
    if "shared_memory_region" in item.parameters:
        raise invalid_arg(f"shared memory inputs are not supported yet (input '{name}')")
    count = element_count(shape)
    if raw is not None:
        if item.HasField("contents"):
            raise invalid_arg(
                f"contents field must not be specified when using raw_input_contents for '{name}' for "
                f"model '{model}'"
            )
        if datatype == "BYTES":
            data = bytes_array(deserialize_bytes(raw, count), shape)
        else:
            expected = count * ELEMENT_SIZE[datatype]
            if len(raw) != expected:
                raise invalid_arg(
                    f"unexpected total byte size {len(raw)} for input '{name}', expecting {expected}"
                )
            data = np.frombuffer(raw, dtype=numpy_dtype(datatype)).reshape(shape)
        return InferTensor(name, datatype, shape, data)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise invalid_arg(f"{datatype} input '{name}' must be sent in raw_input_contents")
    values = getattr(item.contents, field)
    if len(values) != count:
        raise invalid_arg(f"unexpected number of elements {len(values)} for inference input '{name}', expecting {count}")
    if datatype == "BYTES":
        data = bytes_array(list(values), shape)
    else:
        data = np.array(values, dtype=numpy_dtype(datatype)).reshape(shape)
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
