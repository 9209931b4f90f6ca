"""Inference requests and responses in KServe v2 JSON with Triton's binary tensor extension.

A body is a JSON header, optionally followed by raw tensor bytes; the
``Inference-Header-Content-Length`` header says where the JSON ends. Binary inputs are
viewed in place with ``numpy.frombuffer`` (no copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from tritonlite.core.datatypes import (
    ELEMENT_SIZE,
    bytes_array,
    deserialize_bytes,
    element_count,
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
from tritonlite.core.validation import RAW_INPUT_NAME, request_prefix
from tritonlite.frontends.http import large_json

if TYPE_CHECKING:
    from tritonlite.models.model import ModelVersion

# request parameters the server consumes itself (the rest reach the model)
_RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}
)


def decode_request(model_name: str, model_version: str, body: bytes, header_length: int | None, shm=None):
    """Parse an infer body. Returns the request and whether outputs default to binary.

    ``shm`` (a sharedmem.registry.SharedMemory) resolves inputs and outputs that name a region.
    """
    if header_length is None:
        json_part: bytes | memoryview = body
        binary = memoryview(b"")
    else:
        check_header_length(header_length, len(body))
        view = memoryview(body)
        json_part = view[:header_length]
        binary = view[header_length:]
    if len(json_part) > large_json.SPLIT:  # its "data" arrays parsed in pieces (see large_json)
        try:
            return _request_of(_parse(json_part, large_json.load), model_name, model_version, binary, shm)
        except large_json.Irregular:
            pass
    return _request_of(_parse(json_part, orjson.loads), model_name, model_version, binary, shm)


def check_header_length(header_length: int, body_size: int) -> None:
    """Triton's check of ``Inference-Header-Content-Length`` against the (inflated) body."""
    if header_length < 0 or header_length > body_size:
        raise invalid_arg(f"inference header size should be in range (0, {body_size}), got: {header_length}")


def _parse(json_part: bytes | memoryview, loads: Callable[[Any], Any]) -> Any:
    try:
        return loads(json_part)
    except orjson.JSONDecodeError as exc:
        end = bytes(json_part).find(b"\0")
        if end >= 0:  # rapidjson (Triton) stops at a NUL byte: a document before it stands
            try:
                return loads(json_part[:end])
            except orjson.JSONDecodeError:
                pass
        raise internal(f"failed to parse the request JSON buffer: {_json_error(exc, json_part)} at {exc.pos}") from None


def _request_of(
    document: Any, model_name: str, model_version: str, binary: memoryview, shm
) -> tuple[InferRequest, bool]:
    if not isinstance(document, dict):
        raise internal("Unable to parse 'inputs': attempt to access non-existing object member 'inputs'")

    request = InferRequest(model_name, model_version)
    request_id = document.get("id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise internal("Unable to parse 'id': attempt to access JSON non-string as string")
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
        raise internal("Unable to parse 'inputs': attempt to access non-existing object member 'inputs'")
    offset = 0
    for item in inputs:
        tensor, offset = _decode_input(item, binary, offset, model_name, shm)
        request.inputs.append(tensor)
    if offset != len(binary):
        raise invalid_arg(f"unexpected additional input data for model '{model_name}'")

    outputs = document.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise invalid_arg("Unable to parse 'outputs': expected an array")
        request.outputs = [_decode_output(item, binary_default, shm) for item in outputs]
    return request, binary_default


def _apply_request_parameters(request: InferRequest, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if key in ("priority", "timeout"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise internal(
                    f"Unable to parse '{key}': attempt to access JSON non-unsigned-integer as unsigned-integer"
                )
            if key == "priority":
                request.priority = value
            else:
                request.timeout_us = value
        elif apply_sequence_parameter(request, key, value):
            pass
        elif key not in _RESERVED_PARAMETERS:
            request.parameters[key] = value


def _decode_input(item: Any, binary: memoryview, offset: int, model_name: str, shm=None) -> tuple[InferTensor, int]:
    if type(item) is not dict:
        raise internal("Unable to parse 'inputs': each input must be a JSON object")
    name = item.get("name")
    datatype = item.get("datatype")
    shape = item.get("shape")
    if type(name) is not str or type(datatype) is not str or type(shape) is not list:
        _input_fields_error(name, datatype, shape)
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:  # bool is not int here, as rapidjson sees it
            _shape_error(name, datatype, shape)
        count *= dim
    if datatype not in ELEMENT_SIZE:
        raise invalid_arg(f"invalid datatype for input {name}")
    params = item.get("parameters")
    size = region = None
    if params is not None:
        if type(params) is not dict:
            raise internal(f"Unable to parse 'parameters' for input '{name}'")
        size = params.get("binary_data_size")
        region = params.get("shared_memory_region")
    has_data = "data" in item
    if has_data + (size is not None) + (region is not None) != 1:
        given = [field for field, present in (("data", has_data), ("binary_data_size", size is not None),
                                              ("shared_memory_region", region is not None)) if present]  # fmt: skip
        raise invalid_arg(
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', "
            "'shared_memory_region' in 'parameters'. But "
            + ("no field is set" if not given else "set " + " ".join(f"'{field}'" for field in given))
        )
    if size is not None:
        if type(size) is not int or size < 0:
            raise internal("Unable to parse 'binary_data_size': attempt to access JSON non-unsigned-integer")
        end = offset + size
        if end > len(binary):
            raise invalid_arg(
                f"unexpected size for input '{name}', expecting {end - len(binary)} additional bytes for model "
                f"'{model_name}'"
            )
        return InferTensor(name, datatype, shape, tensor_from_bytes(binary[offset:end], datatype, shape, count)), end
    if region is not None:
        region_offset, region_size = _region_params(params, name)
        if shm is None:
            raise invalid_arg(f"shared memory is not available for input '{name}'")
        chunk = shm.read(region, region_offset, region_size)
        return InferTensor(name, datatype, shape, tensor_from_bytes(chunk, datatype, shape, count)), offset
    if datatype == "FP16" or datatype == "BF16":
        raise invalid_arg(
            f"receiving {datatype} data via JSON is not supported. Please use the binary data format for input {name}"
        )
    dtype = numpy_dtype(datatype)
    return InferTensor(name, datatype, shape, _json_data(datatype, dtype, shape, count, item["data"])), offset


def _input_fields_error(name: Any, datatype: Any, shape: Any) -> None:
    """Triton's error for an input whose name, datatype or shape is missing or of the wrong type."""
    if not isinstance(name, str):
        raise internal("Unable to parse 'name': attempt to access non-existing object member 'name'")
    if datatype is None:
        raise internal("Unable to parse 'datatype': attempt to access non-existing object member 'datatype'")
    if shape is None:
        raise internal("Unable to parse 'shape': attempt to access non-existing object member 'shape'")
    if not isinstance(datatype, str):
        raise internal("Unable to parse 'datatype': attempt to access JSON non-string as string")
    raise internal("Unable to parse 'shape': attempt to access JSON non-signed-integer as signed integer")


def _shape_error(name: str, datatype: str, shape: list) -> None:
    """Triton's error for a shape with a non-integer or a negative dimension (an unknown datatype
    is reported before a negative dimension)."""
    if not all(type(d) is int for d in shape):
        raise internal("Unable to parse 'shape': attempt to access JSON non-signed-integer as signed integer")
    if datatype not in ELEMENT_SIZE:
        raise invalid_arg(f"invalid datatype for input {name}")
    raise invalid_arg(f"invalid shape {_fmt(shape)} for input '{name}': dimensions must be non-negative")


def _fmt(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _json_error(exc: orjson.JSONDecodeError, text: bytes | memoryview) -> str:
    """rapidjson's wording (as Triton reports it) for the common cases."""
    stripped = bytes(text).split(b"\0", 1)[0].strip()  # rapidjson stops at a NUL byte
    if not stripped:
        return "The document is empty."
    return "Invalid value."


_NON_NUMBER = {
    "f": "attempt to access JSON non-number as double",
    "i": "attempt to access JSON non-signed-integer as signed integer",
    "u": "attempt to access JSON non-unsigned-integer as unsigned integer",
    "b": "attempt to access JSON non-boolean as boolean",
}


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        flat: list = []
        for sub in data:
            flat.extend(_flatten(sub))
        return flat
    return data


def _json_data(datatype: str, dtype: np.dtype, shape: list[int], count: int, data: Any) -> np.ndarray:
    if isinstance(data, large_json.NumberArray):
        return _number_array(datatype, dtype, shape, count, data)
    flat = _flatten(data)
    if len(flat) != count:
        raise internal("Unable to parse 'data': Shape does not match true shape of 'data' field")
    if datatype == "BYTES":
        for value in flat:
            if not isinstance(value, str):
                raise internal("Unable to parse 'data': attempt to access JSON non-string as string")
        return bytes_array([value.encode("utf-8") for value in flat], _numpy_shape(shape))
    _check_numbers(dtype.kind, flat)
    try:
        return np.array(flat, dtype=dtype).reshape(_numpy_shape(shape))
    except OverflowError:
        raise invalid_arg(f"Unable to parse 'data': value out of range for {datatype}") from None


# the Python types of JSON values that each numpy kind takes (bool is not an int here)
_NUMBER_TYPES = {"b": {bool}, "f": {int, float}, "i": {int}, "u": {int}}


def _check_numbers(kind: str, flat: list) -> None:
    types = set(map(type, flat))
    if not types <= _NUMBER_TYPES[kind] or (kind == "u" and flat and min(flat) < 0):
        raise internal(f"Unable to parse 'data': {_NON_NUMBER[kind]}")


def _number_array(
    datatype: str, dtype: np.dtype, shape: list[int], count: int, data: large_json.NumberArray
) -> np.ndarray:
    """``_json_data`` for an array ``large_json`` cut out: checked and converted piece by piece."""
    pieces = data.pieces()
    if large_json.count(pieces) != count:
        raise internal("Unable to parse 'data': Shape does not match true shape of 'data' field")
    if datatype == "BYTES":
        raise internal("Unable to parse 'data': attempt to access JSON non-string as string")
    out = np.empty(count, dtype)
    offset = 0
    for values in large_json.iter_numbers(pieces):
        _check_numbers(dtype.kind, values)
        try:
            out[offset : offset + len(values)] = np.array(values, dtype=dtype)
        except OverflowError:
            raise invalid_arg(f"Unable to parse 'data': value out of range for {datatype}") from None
        offset += len(values)
    return out.reshape(_numpy_shape(shape))


def _numpy_shape(shape: list[int]) -> list[int]:
    """The shape to give JSON data: as declared, or flat past numpy's 64 dimensions (no model has
    that many: validation then refuses the request with Triton's text, not numpy)."""
    return shape if len(shape) <= 64 else [-1]


def _region_params(params: dict, name: str) -> tuple[int, int]:
    region_offset = params.get("shared_memory_offset", 0)
    region_size = params.get("shared_memory_byte_size")
    for key, value in (("shared_memory_offset", region_offset), ("shared_memory_byte_size", region_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise internal(f"Unable to parse '{key}': attempt to access JSON non-unsigned-integer as unsigned-integer")
    return region_offset, region_size


def _decode_output(item: Any, binary_default: bool, shm=None) -> RequestedOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise invalid_arg("Unable to parse 'outputs': each output must be an object with a 'name'")
    params = item.get("parameters")
    class_count = 0
    binary = binary_default
    region = None
    if params:
        if not isinstance(params, dict):
            raise invalid_arg(f"Unable to parse 'parameters' for output '{item['name']}'")
        class_count = params.get("classification", 0)
        if type(class_count) is not int or class_count < 0:
            raise internal(
                "Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer"
            )
        binary = bool(params.get("binary_data", binary_default))
        if "shared_memory_region" in params:
            region_offset, region_size = _region_params(params, item["name"])
            if shm is None:
                raise invalid_arg(f"shared memory is not available for output '{item['name']}'")
            shm.check_output(params["shared_memory_region"], region_offset, region_size)
            region = (params["shared_memory_region"], region_offset, region_size)
    out = RequestedOutput(item["name"], params, class_count)
    out.parameters = {"binary_data": binary, "shm": region} if region else {"binary_data": binary}
    return out


def binary_headers(json_length: int) -> list[tuple[bytes, bytes]]:
    """The HTTP headers of an answer whose JSON header (``json_length`` bytes) binary tensors follow."""
    return [
        (b"content-type", b"application/octet-stream"),
        (b"inference-header-content-length", str(json_length).encode()),
    ]


def encode_response(
    response: InferResponse, request: InferRequest, binary_default: bool, shm=None
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when binary tensors follow.

    Outputs asked for in a shared memory region are written there and carry no data.
    """
    binary_names: dict[str, bool] = {}
    regions: dict[str, tuple] = {}
    if request.outputs:
        for requested in request.outputs:
            binary_names[requested.name] = bool(requested.parameters and requested.parameters.get("binary_data"))
            if requested.parameters and requested.parameters.get("shm"):
                regions[requested.name] = requested.parameters["shm"]
    chunks: list[bytes | np.ndarray] = []
    outputs = []
    splice: large_json.Splice | None = None
    for tensor in response.outputs:
        binary = binary_names.get(tensor.name, binary_default)
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        region = regions.get(tensor.name)
        if region is not None:
            shm.write(tensor.name, region[0], region[1], region[2], tensor_bytes(tensor.datatype, tensor.data))
        elif binary:
            raw = tensor_buffer(tensor.datatype, tensor.data)
            chunks.append(raw)
            entry["parameters"] = {"binary_data_size": len(raw) if isinstance(raw, bytes) else raw.nbytes}
        else:
            values = _json_values(tensor)
            if type(values) is bytes:  # JSON text written apart (large_json)
                if splice is None:
                    splice = large_json.Splice()
                values = splice.mark(values)
            entry["data"] = values
        outputs.append(entry)
    document: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = outputs
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if splice is not None:
        header = splice.apply(header)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _json_values(tensor: InferTensor) -> Any:
    """An output's values for the JSON answer; or their JSON text, when written apart: BYTES values
    that are not UTF-8 (passed as they are, as Triton does) and numeric arrays too big for one
    orjson call (``large_json``)."""
    data = tensor.data
    if tensor.datatype == "BYTES":
        values = [v if isinstance(v, (bytes, bytearray)) else str(v).encode() for v in np.asarray(data).reshape(-1)]
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            return large_json.render_bytes(values)
    if tensor.datatype in ("FP16", "BF16", "FP32"):
        if tensor.datatype == "FP16":  # Triton 2.51's text, which names no output; the whole request fails
            raise invalid_arg(
                "sending FP16 data via JSON is not supported. Please use the binary data format for output"
            )
        if tensor.datatype == "BF16":
            raise invalid_arg(f"BF16 output '{tensor.name}' can only be returned as binary data")
        # Triton writes float values as doubles: 0.2f is 0.20000000298023224 on the wire
        values = np.asarray(data, dtype=np.float64).reshape(-1)
    else:
        values = np.ascontiguousarray(data).reshape(-1)
    return large_json.render_numbers(values) if values.size > large_json.PIECE else values


def raw_request(model: ModelVersion, model_name: str, model_version: str, body: bytes) -> InferRequest:
    """Triton's raw binary request: the whole body is the data of the model's only input."""

    request = InferRequest(model_name, model_version)
    if len(model.inputs) != 1:
        raise invalid_arg(
            f"{request_prefix(request)}Raw request must only have 1 input (found 1) to be deduced but got "
            f"{len(model.inputs)} inputs in '{model_name}' model configuration"
        )
    spec = next(iter(model.inputs.values()))
    batch = [1] if model.max_batch_size > 0 else []
    if spec.datatype == "BYTES":
        items = deserialize_bytes(body)
        shape = batch + [len(items)]
        data = bytes_array(items, shape)
    else:
        if -1 in spec.dims:  # one variable dimension takes whatever the body holds
            known = element_count([d for d in spec.dims if d != -1])
            rest = len(body) // (ELEMENT_SIZE[spec.datatype] * known) if known else 0
            shape = batch + [rest if d == -1 else d for d in spec.dims]
        else:
            shape = batch + list(spec.dims)
        data = tensor_from_bytes(body, spec.datatype, shape, element_count(shape))
    request.inputs.append(InferTensor(RAW_INPUT_NAME, spec.datatype, shape, data))
    return request
