"""Inference requests and responses in KServe v2 JSON with Triton's binary tensor extension.

A body is a JSON header, optionally followed by raw tensor bytes; the
``Inference-Header-Content-Length`` header says where the JSON ends. Binary inputs are
viewed in place with ``numpy.frombuffer`` (no copy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from tritonlite.core.datatypes import (
    ELEMENT_SIZE,
    bytes_array,
    deserialize_bytes,
    element_count,
    numpy_dtype,
    serialize_bytes,
)
from tritonlite.core.errors import invalid_arg
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput

# request parameters the server consumes itself (the rest reach the model)
_RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}
)


def decode_request(model_name: str, model_version: str, body: bytes, header_length: int | None):
    """Parse an infer body. Returns the request and whether outputs default to binary."""
    if header_length is None:
        json_part: bytes | memoryview = body
        binary = memoryview(b"")
    else:
        if header_length > len(body):
            raise invalid_arg(
                f"inference header size should be in range (0, {len(body)}), got: {header_length}"
            )
        view = memoryview(body)
        json_part = view[:header_length]
        binary = view[header_length:]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise invalid_arg(f"failed to parse the request JSON buffer: {exc.msg} at {exc.pos}") from None
    if not isinstance(document, dict):
        raise invalid_arg("failed to parse the request JSON buffer: the request must be a JSON object")

    request = InferRequest(model_name, model_version)
    request_id = document.get("id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise invalid_arg("Unable to parse 'id': attempt to access JSON non-string as string")
        request.id = request_id

    binary_default = False
    parameters = document.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise invalid_arg("Unable to parse 'parameters': expected a JSON object")
        binary_default = bool(parameters.get("binary_data_output", False))
        _apply_request_parameters(request, parameters)

    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise invalid_arg("Unable to parse 'inputs': attempt to access non-existing object member 'inputs'")
    offset = 0
    for item in inputs:
        tensor, offset = _decode_input(item, binary, offset)
        request.inputs.append(tensor)
    if offset != len(binary):
        raise invalid_arg(
            f"unexpected additional input data for model '{model_name}'; binary data size {len(binary)}, "
            f"used {offset}"
        )

    outputs = document.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise invalid_arg("Unable to parse 'outputs': expected an array")
        request.outputs = [_decode_output(item, binary_default) for item in outputs]
    return request, binary_default


def _apply_request_parameters(request: InferRequest, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if key == "priority":
            request.priority = int(value)
        elif key == "timeout":
            request.timeout_us = int(value)
        elif key == "sequence_id":
            request.correlation_id = value
        elif key == "sequence_start":
            request.flags |= 1 if value else 0
        elif key == "sequence_end":
            request.flags |= 2 if value else 0
        elif key not in _RESERVED_PARAMETERS:
            request.parameters[key] = value


def _decode_input(item: Any, binary: memoryview, offset: int) -> tuple[InferTensor, int]:
    if not isinstance(item, dict):
        raise invalid_arg("Unable to parse 'inputs': each input must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str):
        raise invalid_arg("Unable to parse 'name': attempt to access non-existing object member 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise invalid_arg(
            f"Unable to parse 'datatype': attempt to access non-existing object member 'datatype' "
            f"for input '{name}'"
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise invalid_arg(f"Unable to parse 'shape' for input '{name}': expected an array of integers")
    dtype = numpy_dtype(datatype) if datatype in ELEMENT_SIZE else None
    if dtype is None:
        raise invalid_arg(f"invalid datatype '{datatype}' of input '{name}'")
    if any(d < 0 for d in shape):
        raise invalid_arg(f"invalid shape {shape} for input '{name}': dimensions must be non-negative")
    count = element_count(shape)
    params = item.get("parameters")
    size = None
    if params:
        if not isinstance(params, dict):
            raise invalid_arg(f"Unable to parse 'parameters' for input '{name}'")
        size = params.get("binary_data_size")
        if "shared_memory_region" in params:
            raise invalid_arg(f"shared memory inputs are not supported yet (input '{name}')")
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise invalid_arg(f"Unable to parse 'binary_data_size' for input '{name}'")
        end = offset + size
        if end > len(binary):
            raise invalid_arg(
                f"unexpected end of binary data for input '{name}': expected {size} bytes at offset "
                f"{offset}, only {len(binary) - offset} available"
            )
        chunk = binary[offset:end]
        if datatype == "BYTES":
            data = bytes_array(deserialize_bytes(chunk, count), shape)
        else:
            expected = count * ELEMENT_SIZE[datatype]
            if size != expected:
                raise invalid_arg(
                    f"unexpected total byte size {size} for input '{name}', expecting {expected}"
                )
            data = np.frombuffer(chunk, dtype=dtype).reshape(shape)
        return InferTensor(name, datatype, shape, data), end
    if "data" not in item:
        raise invalid_arg(f"unable to find data for input '{name}'")
    return InferTensor(name, datatype, shape, _json_data(name, datatype, dtype, shape, count, item["data"])), offset


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        flat: list = []
        for sub in data:
            flat.extend(_flatten(sub))
        return flat
    return data


def _json_data(name: str, datatype: str, dtype: np.dtype, shape: list[int], count: int, data: Any) -> np.ndarray:
    flat = _flatten(data)
    if len(flat) != count:
        raise invalid_arg(
            f"unexpected number of string elements {len(flat)} for inference input '{name}', expecting {count}"
            if datatype == "BYTES"
            else f"unexpected size {len(flat)} for inference input '{name}', expecting {count}"
        )
    if datatype == "BYTES":
        items = []
        for value in flat:
            if not isinstance(value, str):
                raise invalid_arg(f"unable to parse 'data': expected string for input '{name}'")
            items.append(value.encode("utf-8"))
        return bytes_array(items, shape)
    if datatype == "BF16":
        raise invalid_arg(f"BF16 data of input '{name}' must be sent as binary data")
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise invalid_arg(f"unable to parse 'data': expected boolean for input '{name}'")
    else:
        is_float = dtype.kind == "f"
        for value in flat:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                not is_float and isinstance(value, float)
            ):
                kind = "number" if is_float else "integer"
                raise invalid_arg(f"unable to parse 'data': expected {kind} for input '{name}'")
    try:
        return np.array(flat, dtype=dtype).reshape(shape)
    except OverflowError:
        raise invalid_arg(f"unable to parse 'data': value out of range for {datatype} input '{name}'") from None


def _decode_output(item: Any, binary_default: bool) -> RequestedOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise invalid_arg("Unable to parse 'outputs': each output must be an object with a 'name'")
    params = item.get("parameters")
    class_count = 0
    binary = binary_default
    if params:
        if not isinstance(params, dict):
            raise invalid_arg(f"Unable to parse 'parameters' for output '{item['name']}'")
        class_count = int(params.get("classification", 0) or 0)
        binary = bool(params.get("binary_data", binary_default))
        if "shared_memory_region" in params:
            raise invalid_arg(f"shared memory outputs are not supported yet (output '{item['name']}')")
    out = RequestedOutput(item["name"], params, class_count)
    out.parameters = {"binary_data": binary}
    return out


def encode_response(
    response: InferResponse, request: InferRequest, binary_default: bool
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when binary tensors follow."""
    binary_names: dict[str, bool] = {}
    if request.outputs:
        for requested in request.outputs:
            binary_names[requested.name] = bool(requested.parameters and requested.parameters.get("binary_data"))
    chunks: list[bytes] = []
    outputs = []
    for tensor in response.outputs:
        binary = binary_names.get(tensor.name, binary_default)
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if binary:
            raw = _raw_bytes(tensor)
            chunks.append(raw)
            entry["parameters"] = {"binary_data_size": len(raw)}
        else:
            entry["data"] = _json_values(tensor)
        outputs.append(entry)
    document: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = outputs
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _raw_bytes(tensor: InferTensor) -> bytes:
    if tensor.datatype == "BYTES":
        return serialize_bytes(np.asarray(tensor.data))
    return np.ascontiguousarray(tensor.data).tobytes()


def _json_values(tensor: InferTensor) -> Any:
    data = tensor.data
    if tensor.datatype == "BYTES":
        return [
            v.decode("utf-8", errors="replace") if isinstance(v, (bytes, bytearray)) else str(v)
            for v in np.asarray(data).reshape(-1)
        ]
    if tensor.datatype in ("FP16", "BF16"):
        if tensor.datatype == "BF16":
            raise invalid_arg(f"BF16 output '{tensor.name}' can only be returned as binary data")
        return np.asarray(data, dtype=np.float32).reshape(-1)
    return np.ascontiguousarray(data).reshape(-1)
