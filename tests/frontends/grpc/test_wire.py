"""wire.split_request / join_response agree with protobuf on every message shape, without copying tensors."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from tritonlite.frontends.grpc.wire import _varint, encode_varint, join_response, split_request
from tritonlite.protocol import grpc_service_pb2 as pb


def _request(raw: list[bytes]) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="identity", model_version="1", id="abc")
    message.parameters["priority"].int64_param = 3
    for index, chunk in enumerate(raw):
        tensor = message.inputs.add(name=f"INPUT{index}", datatype="UINT8", shape=[len(chunk)])
        tensor.parameters["binary"].bool_param = True
    message.outputs.add(name="OUTPUT0")
    message.raw_input_contents.extend(raw)
    return message


@pytest.mark.parametrize("raw", [[], [b""], [b"\x01\x02\x03"], [b"a" * 300, b"", b"b" * 70000]])
def test_split_request_matches_protobuf(raw):
    message = _request(raw)
    parsed, views = split_request(message.SerializeToString())
    assert [bytes(v) for v in views] == raw
    assert not parsed.raw_input_contents
    parsed.raw_input_contents.extend(raw)
    assert parsed == message


def test_split_request_views_the_received_buffer():
    data = _request([b"x" * 1024]).SerializeToString()
    _, (view,) = split_request(data)
    assert view.obj is data  # a slice of the wire bytes, not a copy
    assert np.frombuffer(view, np.uint8).base is not None


def test_split_request_accepts_fields_in_any_order_and_unknown_fields():
    head = pb.ModelInferRequest(model_name="m", inputs=[pb.ModelInferRequest.InferInputTensor(name="A")])
    raw_field = b"\x3a" + encode_varint(3) + b"xyz"  # field 7, length-delimited
    unknown = b"\xa0\x06\x05"  # field 100, varint 5
    data = raw_field + head.SerializeToString() + unknown + b"\x3a\x00"
    parsed, views = split_request(data)
    assert [bytes(v) for v in views] == [b"xyz", b""]
    assert parsed.model_name == "m" and parsed.inputs[0].name == "A"
    reference = pb.ModelInferRequest.FromString(data)
    assert list(reference.raw_input_contents) == [b"xyz", b""]


@pytest.mark.parametrize(
    "data",
    [
        b"\x3a\x05ab",  # length beyond the end
        b"\x3a",  # missing length
        b"\x0a\xff\xff",  # truncated varint length
        b"\x0b",  # group start (wire type 3)
        b"\x0d\x01",  # fixed32 cut short
    ],
)
def test_split_request_refuses_malformed_bytes(data):
    with pytest.raises(DecodeError):
        split_request(data)


def test_split_request_surfaces_protobuf_errors_in_other_fields():
    # a string field with invalid UTF-8 is protobuf's to refuse, as before
    with pytest.raises(DecodeError):
        split_request(b"\x0a\x02\xff\xfe")


def test_join_response_is_byte_identical_to_protobuf():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([True, False]), np.zeros(0, np.int64)]
    raw = [*arrays, b"\x04\x00\x00\x00abcd", b"x" * 200]
    message = pb.ModelInferResponse(model_name="m", model_version="1", id="7")
    message.parameters["sequence_id"].int64_param = 4
    for index in range(len(raw)):
        message.outputs.add(name=f"OUT{index}", datatype="FP32", shape=[1])
    expected = pb.ModelInferResponse()
    expected.CopyFrom(message)
    expected.raw_output_contents.extend(a if isinstance(a, bytes) else a.tobytes() for a in raw)
    assert join_response(message, raw) == expected.SerializeToString()


def test_join_response_without_outputs_is_the_message():
    message = pb.ModelInferResponse(model_name="m")
    assert join_response(message, []) == message.SerializeToString()


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**32 + 5])
def test_varints_match_protobuf(value):
    serialized = pb.InferParameter(int64_param=value).SerializeToString()  # field 2, varint
    assert serialized == b"\x10" + encode_varint(value)
    view = memoryview(serialized)
    assert _varint(view, 1, len(view)) == (value, len(serialized))
