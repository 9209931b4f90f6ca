"""Unit tests of tritonlite.frontends.http.codec: KServe v2 JSON with Triton's binary extension.

The error texts and kinds are those real Triton 2.51 answered (tests/reference_data); INTERNAL
becomes HTTP 500 and INVALID_ARG HTTP 400 in the frontend.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.frontends.http.codec import decode_request, encode_response

ADD_SUB_JSON = (
    b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[4],"data":[1.0,2.0,3.0,4.0]},'
    b'{"name":"INPUT1","datatype":"FP32","shape":[4],"data":[0.5,0.5,0.5,0.5]}]}'
)


def body(document: dict, *chunks: bytes) -> tuple[bytes, int | None]:
    header = orjson.dumps(document)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def decode(document: dict, *chunks: bytes, model: str = "add_sub"):
    data, length = body(document, *chunks)
    return decode_request(model, "", data, length)


def error_of(data: bytes, length: int | None = None, model: str = "add_sub") -> TritonError:
    with pytest.raises(TritonError) as info:
        decode_request(model, "", data, length)
    return info.value


def fp32_input(name: str, values: list[float], **extra) -> dict:
    return {"name": name, "datatype": "FP32", "shape": [len(values)], "data": values, **extra}


# --- decode: JSON --------------------------------------------------------------------------------


def test_json_request():
    request, binary_default = decode_request("add_sub", "1", ADD_SUB_JSON, None)
    assert binary_default is False
    assert request.model_name == "add_sub"
    assert request.model_version == "1"
    assert request.id == ""
    assert request.outputs is None
    assert [t.name for t in request.inputs] == ["INPUT0", "INPUT1"]
    first = request.inputs[0]
    assert (first.datatype, first.shape) == ("FP32", [4])
    assert first.data.dtype == np.float32
    np.testing.assert_array_equal(first.data, [1, 2, 3, 4])


def test_nested_json_data_is_flattened_to_the_shape():
    request, _ = decode({"inputs": [{"name": "X", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]})
    assert request.inputs[0].data.shape == (2, 2)
    assert request.inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_nested_data_may_differ_from_the_shape_in_nesting():
    # Triton only counts the elements: [[1,2],[3,4]] fills a [4] input
    request, _ = decode({"inputs": [{"name": "X", "datatype": "FP32", "shape": [4], "data": [[1.0, 2.0], [3.0, 4.0]]}]})
    assert request.inputs[0].data.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_int_values_for_fp32_input():
    request, _ = decode({"inputs": [{"name": "X", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})
    assert request.inputs[0].data.dtype == np.float32
    assert request.inputs[0].data.tolist() == [1.0, 2.0]


def test_bool_and_unsigned_json_data():
    request, _ = decode(
        {
            "inputs": [
                {"name": "B", "datatype": "BOOL", "shape": [2], "data": [True, False]},
                {"name": "U", "datatype": "UINT64", "shape": [1], "data": [2**64 - 1]},
            ]
        }
    )
    assert request.inputs[0].data.dtype == np.bool_
    assert request.inputs[0].data.tolist() == [True, False]
    assert request.inputs[1].data.tolist() == [2**64 - 1]


def test_bytes_json_data_is_utf8_encoded():
    request, _ = decode(
        {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [3], "data": ["hello", "Wörld", ""]}]}
    )
    tensor = request.inputs[0]
    assert tensor.data.dtype == np.object_
    assert tensor.data.tolist() == [b"hello", "Wörld".encode(), b""]


def test_id_and_parameters():
    request, _ = decode(
        {
            "id": "my-request-42",
            "inputs": [],
            "parameters": {
                "custom_str": "hello",
                "custom_int": 7,
                "priority": 2,
                "timeout": 1000,
                "sequence_id": 99,
                "sequence_start": True,
                "sequence_end": True,
                "binary_data_output": False,
            },
        }
    )
    assert request.id == "my-request-42"
    assert request.parameters == {"custom_str": "hello", "custom_int": 7}
    assert request.priority == 2
    assert request.timeout_us == 1000
    assert request.correlation_id == 99
    assert request.flags == 3


def test_binary_data_output_parameter_sets_the_default():
    _, binary_default = decode({"inputs": [], "parameters": {"binary_data_output": True}})
    assert binary_default is True


def test_requested_outputs_with_binary_data_and_classification():
    request, _ = decode(
        {
            "inputs": [],
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "OUTPUT0"},
                {"name": "OUTPUT1", "parameters": {"binary_data": False, "classification": 3}},
            ],
        }
    )
    first, second = request.outputs
    assert (first.name, first.parameters, first.class_count) == ("OUTPUT0", {"binary_data": True}, 0)
    assert (second.name, second.parameters, second.class_count) == ("OUTPUT1", {"binary_data": False}, 3)


# --- decode: binary ------------------------------------------------------------------------------


def test_binary_inputs_follow_the_json_header():
    in0 = np.array([1, 2, 3, 4], dtype=np.float32)
    in1 = np.array([0.5] * 4, dtype=np.float32)
    request, _ = decode(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ]
        },
        in0.tobytes(),
        in1.tobytes(),
    )
    np.testing.assert_array_equal(request.inputs[0].data, in0)
    np.testing.assert_array_equal(request.inputs[1].data, in1)
    assert request.inputs[1].data.shape == (4,)


def test_mixed_binary_and_json_inputs():
    raw = np.array([1, 2], dtype=np.int64)
    request, _ = decode(
        {
            "inputs": [
                {"name": "J", "datatype": "INT32", "shape": [1], "data": [9]},
                {"name": "B", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
            ]
        },
        raw.tobytes(),
    )
    assert request.inputs[0].data.tolist() == [9]
    assert request.inputs[1].data.tolist() == [1, 2]


def test_binary_bytes_input():
    raw = b"\x05\0\0\0hello\x06\0\0\0W\xc3\xb6rld"
    request, _ = decode(
        {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 19}}]},
        raw,
    )
    assert request.inputs[0].data.tolist() == [b"hello", b"W\xc3\xb6rld"]


def test_binary_fp16_input():
    values = np.array([1.0, 2.5, -3.0], dtype=np.float16)
    request, _ = decode(
        {"inputs": [{"name": "INPUT0", "datatype": "FP16", "shape": [3], "parameters": {"binary_data_size": 6}}]},
        values.tobytes(),
    )
    assert request.inputs[0].data.dtype == np.float16
    np.testing.assert_array_equal(request.inputs[0].data, values)


def test_binary_input_of_the_wrong_size_stays_bytes_for_validation():
    request, _ = decode(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 12}}]},
        b"\0" * 12,
    )
    assert request.inputs[0].data.dtype == np.uint8
    assert request.inputs[0].data.nbytes == 12


def test_header_length_splits_json_and_binary():
    header = orjson.dumps(
        {"inputs": [{"name": "X", "datatype": "UINT8", "shape": [3], "parameters": {"binary_data_size": 3}}]}
    )
    request, _ = decode_request("m", "", header + b"abc", len(header))
    assert request.inputs[0].data.tobytes() == b"abc"


# --- decode: errors ------------------------------------------------------------------------------


def test_malformed_json_is_internal():
    error = error_of(b'{"inputs": [')
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "failed to parse the request JSON buffer: Invalid value. at 12"


def test_empty_json_is_internal():
    error = error_of(b"\x00\x00\x00@")  # a raw binary body sent without a header length
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "failed to parse the request JSON buffer: The document is empty. at 0"


@pytest.mark.parametrize("data", [b"[1, 2, 3]", b'{"id": "x"}', b'{"inputs": {"name": "INPUT0"}}'])
def test_json_without_an_inputs_array(data):
    error = error_of(data)
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'"


def test_id_must_be_a_string():
    error = error_of(b'{"id": 5, "inputs": []}')
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "Unable to parse 'id': attempt to access JSON non-string as string"


@pytest.mark.parametrize("missing", ["shape", "datatype", "name"])
def test_input_missing_a_member(missing):
    item = fp32_input("INPUT0", [1.0])
    del item[missing]
    error = error_of(orjson.dumps({"inputs": [item]}))
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == f"Unable to parse '{missing}': attempt to access non-existing object member '{missing}'"


def test_input_without_data():
    error = error_of(b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[4]}]}')
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == (
        "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', "
        "'shared_memory_region' in 'parameters'. But no field is set"
    )


def test_input_with_data_and_binary_size():
    item = fp32_input("INPUT0", [1.0], parameters={"binary_data_size": 4})
    error = error_of(*body({"inputs": [item]}, b"\0" * 4))
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message.endswith("But set 'data' 'binary_data_size'")  # Triton's wording


def test_unknown_datatype():
    error = error_of(b'{"inputs":[{"name":"INPUT0","datatype":"FLOAT","shape":[1],"data":[1.0]}]}')
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == "invalid datatype for input INPUT0"


def test_fp16_json_data_is_refused():
    error = error_of(b'{"inputs":[{"name":"INPUT0","datatype":"FP16","shape":[3],"data":[1.0,2.5,-3.0]}]}')
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == (
        "receiving FP16 data via JSON is not supported. Please use the binary data format for input INPUT0"
    )


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
def test_json_data_count_mismatch(values):
    item = {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": values}
    error = error_of(orjson.dumps({"inputs": [item]}))
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "Unable to parse 'data': Shape does not match true shape of 'data' field"


@pytest.mark.parametrize(
    ("datatype", "value", "message"),
    [
        ("FP32", "one", "attempt to access JSON non-number as double"),
        ("FP32", True, "attempt to access JSON non-number as double"),
        ("INT32", 1.5, "attempt to access JSON non-signed-integer as signed integer"),
        ("UINT8", -1, "attempt to access JSON non-unsigned-integer as unsigned integer"),
        ("BOOL", 1, "attempt to access JSON non-boolean as boolean"),
        ("BYTES", 5, "attempt to access JSON non-string as string"),
    ],
)
def test_json_value_of_the_wrong_kind(datatype, value, message):
    item = {"name": "X", "datatype": datatype, "shape": [1], "data": [value]}
    error = error_of(orjson.dumps({"inputs": [item]}))
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == f"Unable to parse 'data': {message}"


def test_header_length_larger_than_body():
    error = error_of(ADD_SUB_JSON, 258)
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == f"inference header size should be in range (0, {len(ADD_SUB_JSON)}), got: 258"
    assert len(ADD_SUB_JSON) == 158


BINARY_ADD_SUB = {
    "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
    ]
}


def test_binary_body_longer_than_the_sizes():
    error = error_of(*body(BINARY_ADD_SUB, b"\0" * 40))
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == "unexpected additional input data for model 'add_sub'"


def test_binary_section_without_binary_inputs():
    error = error_of(*body({"inputs": [fp32_input("INPUT0", [1.0])]}, b"\0"))
    assert error.message == "unexpected additional input data for model 'add_sub'"


def test_binary_body_shorter_than_the_sizes():
    error = error_of(*body(BINARY_ADD_SUB, b"\0" * 28))
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == "unexpected size for input 'INPUT1', expecting 4 additional bytes for model 'add_sub'"


def test_negative_binary_size():
    item = {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": -4}}
    error = error_of(*body({"inputs": [item]}, b"\0" * 4))
    assert error.kind is ErrorKind.INTERNAL


def test_negative_shape():
    error = error_of(b'{"inputs":[{"name":"X","datatype":"FP32","shape":[-1],"data":[]}]}')
    assert error.kind is ErrorKind.INVALID_ARG
    assert error.message == "invalid shape [-1] for input 'X': dimensions must be non-negative"


def test_shape_must_be_integers():
    error = error_of(b'{"inputs":[{"name":"X","datatype":"FP32","shape":[1.5],"data":[1.0]}]}')
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == "Unable to parse 'shape': attempt to access JSON non-signed-integer as signed integer"


def test_unknown_shared_memory_region_is_not_found():
    from tritonlite.sharedmem.registry import SharedMemory

    params = {"shared_memory_region": "r", "shared_memory_byte_size": 4}
    item = {"name": "X", "datatype": "FP32", "shape": [1], "parameters": params}
    with pytest.raises(TritonError) as info:
        decode_request("m", "", orjson.dumps({"inputs": [item]}), None, SharedMemory())
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert info.value.message == "Unable to find shared memory region: 'r'"


# --- encode --------------------------------------------------------------------------------------


def add_sub_response(id: str = "") -> InferResponse:
    out0 = np.array([1.5, 2.5, 3.5, 4.5], dtype=np.float32)
    out1 = np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32)
    return InferResponse(
        "add_sub", "1", id, [InferTensor("OUTPUT0", "FP32", [4], out0), InferTensor("OUTPUT1", "FP32", [4], out1)]
    )


def requested(*outputs: tuple[str, bool | None]) -> InferRequest:
    request = InferRequest("add_sub")
    request.outputs = [
        RequestedOutput(name, None if binary is None else {"binary_data": binary}) for name, binary in outputs
    ]
    return request


def test_encode_json_response():
    data, length = encode_response(add_sub_response(), InferRequest("add_sub"), False)
    assert length is None
    assert orjson.loads(data) == {
        "model_name": "add_sub",
        "model_version": "1",
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [4], "data": [1.5, 2.5, 3.5, 4.5]},
            {"name": "OUTPUT1", "datatype": "FP32", "shape": [4], "data": [0.5, 1.5, 2.5, 3.5]},
        ],
    }


def test_encode_fp32_json_values_as_doubles():
    tensor = InferTensor("OUT", "FP32", [1], np.array([0.2], dtype=np.float32))
    data, _ = encode_response(InferResponse("m", "1", "", [tensor]), InferRequest("m"), False)
    assert b"0.20000000298023224" in data


def test_encode_id_and_parameters():
    response = add_sub_response(id="my-request-42")
    response.parameters = {"answer": 42}
    data, _ = encode_response(response, InferRequest("add_sub"), False)
    document = orjson.loads(data)
    assert document["id"] == "my-request-42"
    assert document["parameters"] == {"answer": 42}


def test_encode_binary_data_output_default():
    data, length = encode_response(add_sub_response(), InferRequest("add_sub"), True)
    header = orjson.loads(data[:length])
    assert [o["parameters"] for o in header["outputs"]] == [{"binary_data_size": 16}, {"binary_data_size": 16}]
    assert all("data" not in o for o in header["outputs"])
    out = np.frombuffer(data[length:], dtype=np.float32)
    assert out.tolist() == [1.5, 2.5, 3.5, 4.5, 0.5, 1.5, 2.5, 3.5]


def test_encode_per_output_binary_data():
    # Triton's add_sub_infer_one_binary_one_json_output: OUTPUT1 binary, OUTPUT0 JSON
    request = requested(("OUTPUT1", True), ("OUTPUT0", None))
    data, length = encode_response(add_sub_response(), request, False)
    header = orjson.loads(data[:length])
    assert header["outputs"] == [
        {"name": "OUTPUT0", "datatype": "FP32", "shape": [4], "data": [1.5, 2.5, 3.5, 4.5]},
        {"name": "OUTPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
    ]
    assert np.frombuffer(data[length:], dtype=np.float32).tolist() == [0.5, 1.5, 2.5, 3.5]


def test_encode_per_output_json_overrides_binary_default():
    request = requested(("OUTPUT0", False), ("OUTPUT1", True))
    data, length = encode_response(add_sub_response(), request, True)
    header = orjson.loads(data[:length])
    assert "data" in header["outputs"][0]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert len(data) == length + 16


def test_encode_bytes_output_binary_and_json():
    upper = InferTensor("UPPER", "BYTES", [2], np.array([b"HELLO", "WÖRLD".encode()], dtype=np.object_))
    length_tensor = InferTensor("LENGTH", "INT32", [2], np.array([5, 6], dtype=np.int32))
    response = InferResponse("string_upper", "1", "", [upper, length_tensor])
    data, length = encode_response(response, InferRequest("string_upper"), True)
    header = orjson.loads(data[:length])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [19, 8]
    assert data[length:] == b"\x05\0\0\0HELLO\x06\0\0\0W\xc3\x96RLD\x05\0\0\0\x06\0\0\0"

    data, length = encode_response(response, InferRequest("string_upper"), False)
    assert length is None
    outputs = orjson.loads(data)["outputs"]
    assert outputs[0]["data"] == ["HELLO", "WÖRLD"]
    assert outputs[1]["data"] == [5, 6]


def test_encode_multi_dim_json_data_is_flat():
    tensor = InferTensor("OUT", "INT64", [2, 2], np.array([[1, 2], [3, 4]], dtype=np.int64))
    data, _ = encode_response(InferResponse("m", "1", "", [tensor]), InferRequest("m"), False)
    assert orjson.loads(data)["outputs"][0] == {
        "name": "OUT",
        "datatype": "INT64",
        "shape": [2, 2],
        "data": [1, 2, 3, 4],
    }


def test_encode_bool_and_fp16_json():
    flags = InferTensor("B", "BOOL", [2], np.array([True, False]))
    halves = InferTensor("H", "FP16", [1], np.array([0.5], dtype=np.float16))
    data, _ = encode_response(InferResponse("m", "1", "", [flags]), InferRequest("m"), False)
    assert orjson.loads(data)["outputs"][0]["data"] == [True, False]
    with pytest.raises(TritonError) as info:  # Triton 2.51 refuses FP16 as JSON (captured text)
        encode_response(InferResponse("m", "1", "", [flags, halves]), InferRequest("m"), False)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == (
        "sending FP16 data via JSON is not supported. Please use the binary data format for output"
    )


def test_encode_bf16_needs_binary():
    tensor = InferTensor("OUT", "BF16", [1], np.array([0x3F80], dtype=np.uint16))
    with pytest.raises(TritonError) as info:
        encode_response(InferResponse("m", "1", "", [tensor]), InferRequest("m"), False)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == "BF16 output 'OUT' can only be returned as binary data"
    data, length = encode_response(InferResponse("m", "1", "", [tensor]), InferRequest("m"), True)
    assert data[length:] == struct.pack("<H", 0x3F80)


def test_decode_encode_round_trip_of_a_binary_request():
    values = np.arange(6, dtype=np.int16).reshape(2, 3)
    request, binary_default = decode(
        {
            "inputs": [{"name": "X", "datatype": "INT16", "shape": [2, 3], "parameters": {"binary_data_size": 12}}],
            "parameters": {"binary_data_output": True},
        },
        values.tobytes(),
        model="m",
    )
    tensor = request.inputs[0]
    response = InferResponse("m", "1", "", [InferTensor("Y", tensor.datatype, tensor.shape, tensor.data)])
    data, length = encode_response(response, request, binary_default)
    assert orjson.loads(data[:length])["outputs"][0]["shape"] == [2, 3]
    assert data[length:] == values.tobytes()


def test_priority_and_timeout_must_be_unsigned_integers_as_in_triton():
    from tritonlite.frontends.http.codec import decode_request as decode

    for key in ("priority", "timeout"):
        for bad in ("1", -1, 1.5, True):
            body = orjson.dumps({"parameters": {key: bad}, "inputs": []})
            with pytest.raises(TritonError) as info:
                decode("m", "", body, None)
            assert info.value.kind == ErrorKind.INTERNAL
            assert info.value.message == (
                f"Unable to parse '{key}': attempt to access JSON non-unsigned-integer as unsigned-integer"
            )
    request, _ = decode("m", "", orjson.dumps({"parameters": {"priority": 2, "timeout": 5000}, "inputs": []}), None)
    assert (request.priority, request.timeout_us) == (2, 5000)
