"""Unit tests of tritonlite.frontends.grpc.codec: ModelInferRequest/Response <-> core types.

Error texts are those real Triton 2.51 answered for the same messages (tests/reference_data).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferResponse, InferTensor
from tritonlite.frontends.grpc.codec import (
    CONTENTS_FIELD,
    decode_request,
    encode_response,
    parameter_value,
    set_parameter,
)
from tritonlite.protocol import grpc_service_pb2 as pb

IN0 = np.array([1, 2, 3, 4], dtype=np.float32)
IN1 = np.array([0.5] * 4, dtype=np.float32)


def message(model: str = "add_sub", **kwargs) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name=model, **kwargs)


def add_input(msg: pb.ModelInferRequest, name: str, datatype: str, shape: list[int], **contents):
    tensor = msg.inputs.add(name=name, datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return tensor


def error_of(msg: pb.ModelInferRequest) -> TritonError:
    with pytest.raises(TritonError) as info:
        decode_request(msg)
    assert info.value.kind is ErrorKind.INVALID_ARG
    return info.value


# --- raw contents ------------------------------------------------------------------------------


def test_raw_contents():
    msg = message(model_version="1", id="req-1")
    add_input(msg, "INPUT0", "FP32", [4])
    add_input(msg, "INPUT1", "FP32", [4])
    msg.raw_input_contents.extend([IN0.tobytes(), IN1.tobytes()])
    request = decode_request(msg)
    assert (request.model_name, request.model_version, request.id) == ("add_sub", "1", "req-1")
    assert request.outputs is None
    assert [t.name for t in request.inputs] == ["INPUT0", "INPUT1"]
    assert request.inputs[0].datatype == "FP32"
    assert request.inputs[0].shape == [4]
    np.testing.assert_array_equal(request.inputs[0].data, IN0)
    np.testing.assert_array_equal(request.inputs[1].data, IN1)


def test_raw_multi_dim_contents_have_the_shape():
    values = np.arange(6, dtype=np.int64).reshape(2, 3)
    msg = message()
    add_input(msg, "X", "INT64", [2, 3])
    msg.raw_input_contents.append(values.tobytes())
    np.testing.assert_array_equal(decode_request(msg).inputs[0].data, values)


def test_raw_bytes_contents():
    msg = message("string_upper")
    add_input(msg, "TEXT", "BYTES", [2])
    msg.raw_input_contents.append(b"\x05\0\0\0hello\x06\0\0\0W\xc3\xb6rld")
    tensor = decode_request(msg).inputs[0]
    assert tensor.data.dtype == np.object_
    assert tensor.data.tolist() == [b"hello", b"W\xc3\xb6rld"]


def test_raw_bf16_and_fp16_contents():
    msg = message()
    add_input(msg, "B", "BF16", [2])
    add_input(msg, "H", "FP16", [1])
    msg.raw_input_contents.extend([struct.pack("<2H", 0x3F80, 0x4000), np.float16(1.5).tobytes()])
    bf16, fp16 = decode_request(msg).inputs
    assert bf16.data.dtype == np.uint16 and bf16.data.tolist() == [0x3F80, 0x4000]
    assert fp16.data.dtype == np.float16 and fp16.data.tolist() == [1.5]


def test_raw_contents_of_the_wrong_size_stay_bytes_for_validation():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4])
    msg.raw_input_contents.append(b"\0" * 12)
    tensor = decode_request(msg).inputs[0]
    assert tensor.data.dtype == np.uint8
    assert tensor.data.nbytes == 12


def test_missing_raw_content():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4])
    add_input(msg, "INPUT1", "FP32", [4])
    msg.raw_input_contents.append(IN0.tobytes())
    assert error_of(msg).message == "unable to find data for input tensor 'INPUT1' for model 'add_sub' in request."


def test_raw_and_typed_contents_together():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4], fp32_contents=IN0.tolist())
    add_input(msg, "INPUT1", "FP32", [4])
    msg.raw_input_contents.extend([IN0.tobytes(), IN1.tobytes()])
    assert error_of(msg).message == (
        "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'add_sub'"
    )


def test_raw_contents_with_invalid_datatype():
    msg = message()
    add_input(msg, "INPUT0", "FLOAT", [4])
    msg.raw_input_contents.append(IN0.tobytes())
    assert error_of(msg).message == "invalid datatype 'FLOAT' of input 'INPUT0'"


def test_raw_contents_with_negative_shape():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [-1])
    msg.raw_input_contents.append(IN0.tobytes())
    assert "dimensions must be non-negative" in error_of(msg).message


# --- typed contents ----------------------------------------------------------------------------


def test_typed_contents():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4], fp32_contents=IN0.tolist())
    add_input(msg, "INPUT1", "FP32", [4], fp32_contents=IN1.tolist())
    request = decode_request(msg)
    assert request.inputs[0].data.dtype == np.float32
    np.testing.assert_array_equal(request.inputs[0].data, IN0)
    np.testing.assert_array_equal(request.inputs[1].data, IN1)


@pytest.mark.parametrize(
    ("datatype", "values", "numpy_type"),
    [
        ("BOOL", [True, False], np.bool_),
        ("INT8", [-1, 2], np.int8),
        ("INT16", [-300, 2], np.int16),
        ("INT32", [-70000, 2], np.int32),
        ("INT64", [-(2**40), 2], np.int64),
        ("UINT8", [255, 0], np.uint8),
        ("UINT16", [65535, 1], np.uint16),
        ("UINT32", [2**32 - 1, 1], np.uint32),
        ("UINT64", [2**64 - 1, 1], np.uint64),
        ("FP32", [0.5, -2.0], np.float32),
        ("FP64", [0.1, -2.0], np.float64),
    ],
)
def test_typed_contents_of_each_datatype(datatype, values, numpy_type):
    msg = message()
    add_input(msg, "X", datatype, [2], **{CONTENTS_FIELD[datatype]: values})
    tensor = decode_request(msg).inputs[0]
    assert tensor.datatype == datatype
    assert tensor.data.dtype == np.dtype(numpy_type)
    assert tensor.data.tolist() == values


def test_typed_multi_dim_contents_are_reshaped():
    msg = message()
    add_input(msg, "X", "INT32", [2, 2], int_contents=[1, 2, 3, 4])
    assert decode_request(msg).inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_typed_contents_with_the_wrong_count_are_kept_for_validation():
    # Triton reports this later as "input byte size mismatch ... Expected 16, got 12"
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4], fp32_contents=[1.0, 2.0, 3.0])
    tensor = decode_request(msg).inputs[0]
    assert tensor.shape == [4]
    assert tensor.data.nbytes == 12


def test_typed_bytes_contents():
    msg = message("string_upper")
    add_input(msg, "TEXT", "BYTES", [2], bytes_contents=[b"hello", b"W\xc3\xb6rld"])
    tensor = decode_request(msg).inputs[0]
    assert tensor.data.dtype == np.object_
    assert tensor.data.tolist() == [b"hello", b"W\xc3\xb6rld"]


def test_typed_bytes_contents_with_the_wrong_count():
    msg = message("string_upper")
    add_input(msg, "TEXT", "BYTES", [3], bytes_contents=[b"a", b"b"])
    assert error_of(msg).message == "unexpected number of string elements 2 for inference input 'TEXT', expecting 3"


def test_wrong_contents_field():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4], int_contents=[1, 2, 3, 4])
    add_input(msg, "INPUT1", "FP32", [4], fp32_contents=IN1.tolist())
    assert error_of(msg).message == (
        "unexpected explicit tensor data for input tensor 'INPUT0' for model 'add_sub' of type 'INT32', "
        "expected datatype 'FP32'"
    )


def test_contents_with_an_invalid_datatype():
    msg = message()
    add_input(msg, "INPUT0", "FLOAT", [4], fp32_contents=IN0.tolist())
    assert error_of(msg).message == (
        "unexpected explicit tensor data for input tensor 'INPUT0' for model 'add_sub' of type 'FP32', "
        "expected datatype '<invalid>'"
    )


def test_fp16_has_no_typed_contents_field():
    msg = message()
    add_input(msg, "H", "FP16", [1], fp32_contents=[1.0])
    assert error_of(msg).message == (
        "unexpected explicit tensor data for input tensor 'H' for model 'add_sub' of type 'FP32', "
        "expected datatype 'FP16'"
    )


def test_no_contents_at_all():
    msg = message()
    add_input(msg, "INPUT0", "FP32", [4])
    assert error_of(msg).message == "unable to find data for input tensor 'INPUT0' for model 'add_sub' in request."


def test_empty_tensor_needs_no_contents():
    msg = message()
    add_input(msg, "X", "FP32", [0, 3])
    tensor = decode_request(msg).inputs[0]
    assert tensor.data.shape == (0, 3)
    assert tensor.data.dtype == np.float32


def test_shared_memory_input_is_not_supported():
    msg = message()
    tensor = add_input(msg, "X", "FP32", [1])
    tensor.parameters["shared_memory_region"].string_param = "region"
    assert "shared memory" in error_of(msg).message


# --- parameters and outputs --------------------------------------------------------------------


def test_request_parameters():
    msg = message()
    msg.parameters["custom_int"].int64_param = 7
    msg.parameters["custom_str"].string_param = "hello"
    msg.parameters["custom_bool"].bool_param = True
    msg.parameters["priority"].uint64_param = 3
    msg.parameters["timeout"].int64_param = 500
    msg.parameters["sequence_id"].string_param = "seq-a"
    msg.parameters["sequence_start"].bool_param = True
    msg.parameters["sequence_end"].bool_param = False
    msg.parameters["binary_data_output"].bool_param = True
    request = decode_request(msg)
    assert request.parameters == {"custom_int": 7, "custom_str": "hello", "custom_bool": True}
    assert request.priority == 3
    assert request.timeout_us == 500
    assert request.correlation_id == "seq-a"
    assert request.flags == 1


def test_requested_outputs_and_classification():
    msg = message("labels")
    msg.outputs.add(name="OUTPUT0").parameters["classification"].int64_param = 2
    msg.outputs.add(name="OUTPUT1")
    request = decode_request(msg)
    assert [(o.name, o.class_count) for o in request.outputs] == [("OUTPUT0", 2), ("OUTPUT1", 0)]


def test_shared_memory_output_is_not_supported():
    msg = message()
    msg.outputs.add(name="OUT").parameters["shared_memory_region"].string_param = "region"
    assert "shared memory" in error_of(msg).message


@pytest.mark.parametrize(
    ("value", "field"),
    [(True, "bool_param"), (7, "int64_param"), (0.5, "double_param"), ("text", "string_param")],
)
def test_parameter_round_trip(value, field):
    param = pb.InferParameter()
    set_parameter(param, value)
    assert param.WhichOneof("parameter_choice") == field
    assert parameter_value(param) == value


def test_unset_parameter_is_none():
    assert parameter_value(pb.InferParameter()) is None


# --- encode ------------------------------------------------------------------------------------


def test_encode_numeric_outputs_as_raw_contents():
    out0 = np.array([1.5, 2.5, 3.5, 4.5], dtype=np.float32)
    out1 = np.array([[1, 2], [3, 4]], dtype=np.int64)
    response = InferResponse(
        "add_sub",
        "1",
        "req-1",
        [InferTensor("OUTPUT0", "FP32", [4], out0), InferTensor("OUTPUT1", "INT64", [2, 2], out1)],
    )
    encoded = encode_response(response)
    assert (encoded.model_name, encoded.model_version, encoded.id) == ("add_sub", "1", "req-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in encoded.outputs] == [
        ("OUTPUT0", "FP32", [4]),
        ("OUTPUT1", "INT64", [2, 2]),
    ]
    assert all(not o.HasField("contents") for o in encoded.outputs)
    assert list(encoded.raw_output_contents) == [out0.tobytes(), out1.tobytes()]


def test_encode_non_contiguous_output_in_c_order():
    data = np.arange(6, dtype=np.int32).reshape(2, 3).T  # a transposed view
    encoded = encode_response(InferResponse("m", "1", "", [InferTensor("T", "INT32", [3, 2], data)]))
    assert encoded.raw_output_contents[0] == np.ascontiguousarray(data).tobytes()
    assert np.frombuffer(encoded.raw_output_contents[0], dtype=np.int32).tolist() == [0, 3, 1, 4, 2, 5]


def test_encode_bytes_output_length_prefixed():
    upper = np.array([b"HELLO", "WÖRLD".encode()], dtype=np.object_)
    encoded = encode_response(InferResponse("string_upper", "1", "", [InferTensor("UPPER", "BYTES", [2], upper)]))
    assert encoded.raw_output_contents[0] == b"\x05\0\0\0HELLO\x06\0\0\0W\xc3\x96RLD"
    assert encoded.outputs[0].datatype == "BYTES"


def test_encode_response_parameters():
    response = InferResponse("m", "1", "", [], {"flag": True, "count": 3, "ratio": 0.25, "name": "x"})
    encoded = encode_response(response)
    assert {k: parameter_value(v) for k, v in encoded.parameters.items()} == {
        "flag": True,
        "count": 3,
        "ratio": 0.25,
        "name": "x",
    }


def test_encode_decode_round_trip():
    values = np.array([[1.0, -2.0]], dtype=np.float64)
    encoded = encode_response(InferResponse("m", "1", "", [InferTensor("Y", "FP64", [1, 2], values)]))
    msg = message("m")
    out = encoded.outputs[0]
    add_input(msg, out.name, out.datatype, list(out.shape))
    msg.raw_input_contents.extend(encoded.raw_output_contents)
    np.testing.assert_array_equal(decode_request(msg).inputs[0].data, values)


def test_priority_and_timeout_parameter_types_as_in_triton():
    from tritonlite.frontends.grpc.codec import decode_request as decode
    from tritonlite.protocol import grpc_service_pb2 as service

    cases = [
        ("timeout", "string_param", "x", "invalid value type for 'timeout' parameter, expected int64_param."),
        ("timeout", "uint64_param", 5, "invalid value type for 'timeout' parameter, expected int64_param."),
        ("priority", "string_param", "1",
         "invalid value type for 'priority' parameter, expected int64_param or uint64_param."),
        ("priority", "int64_param", -1, "invalid value for 'priority', expected value >= 0."),
    ]  # fmt: skip
    for key, field, value, message in cases:
        request = service.ModelInferRequest(model_name="m")
        setattr(request.parameters[key], field, value)
        with pytest.raises(TritonError) as info:
            decode(request)
        assert (info.value.kind, info.value.message) == (ErrorKind.INVALID_ARG, message)
    request = service.ModelInferRequest(model_name="m")
    request.parameters["priority"].uint64_param = 2
    request.parameters["timeout"].int64_param = 700
    decoded = decode(request)
    assert (decoded.priority, decoded.timeout_us) == (2, 700)
