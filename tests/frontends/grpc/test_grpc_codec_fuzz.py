"""Fuzz of the gRPC ModelInfer codec (wire split and decode): only TritonError comes out, and the
cases it found answer as Triton 2.51 does (captured from the reference server)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlite.core.errors import TritonError
from tritonlite.frontends.grpc.codec import decode_request, parse_head, split_infer_request
from tritonlite.protocol import grpc_service_pb2 as pb
from tritonlite.sharedmem.registry import SharedMemory

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))

DATATYPES = ["BOOL", "UINT8", "INT8", "INT32", "INT64", "UINT32", "UINT64", "FP16", "BF16", "FP32", "FP64", "BYTES"]
DATATYPES.append("X")  # not a datatype
PARAMETER_KEYS = [
    "binary_data_size", "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size", "classification",
    "sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "other",
]  # fmt: skip
CONTENTS = ["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents", "fp32_contents",
            "fp64_contents", "bytes_contents"]  # fmt: skip

parameter_value = st.one_of(
    st.tuples(st.just("bool_param"), st.booleans()),
    st.tuples(st.just("int64_param"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("uint64_param"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("string_param"), st.text(max_size=5)),
    st.tuples(st.just("double_param"), st.floats()),
    st.just((None, None)),
)
parameters = st.dictionaries(st.sampled_from(PARAMETER_KEYS), parameter_value, max_size=4)
contents = st.one_of(st.none(), st.tuples(st.sampled_from(CONTENTS), st.integers(0, 6)))
inputs = st.lists(
    st.tuples(st.text(max_size=4), st.sampled_from(DATATYPES), st.lists(st.integers(-3, 2**62), max_size=4),
              parameters, contents), max_size=3)  # fmt: skip
outputs = st.lists(st.tuples(st.text(max_size=4), parameters), max_size=3)
messages = st.tuples(st.text(max_size=3), parameters, inputs, outputs, st.lists(st.binary(max_size=40), max_size=4))


def _set(target, parameters: dict) -> None:
    for key, (field, value) in parameters.items():
        if field is None:
            target[key].Clear()
        else:
            setattr(target[key], field, value)


def build(message) -> pb.ModelInferRequest:
    model, request_parameters, tensors, wanted, raw = message
    request = pb.ModelInferRequest(model_name=model)
    _set(request.parameters, request_parameters)
    for name, datatype, shape, tensor_parameters, content in tensors:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        _set(tensor.parameters, tensor_parameters)
        if content is not None:
            field, count = content
            values = getattr(tensor.contents, field)
            for index in range(count):
                values.append(b"ab" if field == "bytes_contents" else (True if field == "bool_contents" else index))
    for name, output_parameters in wanted:
        _set(request.outputs.add(name=name).parameters, output_parameters)
    request.raw_input_contents.extend(raw)
    return request


def decodes_or_refuses(data: bytes) -> None:
    try:
        head, raw = split_infer_request(data)
        decode_request(parse_head(head), SharedMemory(), raw)
    except TritonError:
        pass


@FUZZ
@given(messages, st.integers(0, 2**31), st.binary(max_size=8))
def test_messages_and_their_truncations(message, cut, junk):
    data = build(message).SerializeToString()
    decodes_or_refuses(data)
    decodes_or_refuses(data[: cut % (len(data) + 1)] + junk)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    decodes_or_refuses(data)


def _refusal(request: pb.ModelInferRequest) -> str:
    with pytest.raises(TritonError) as info:
        decode_request(request, SharedMemory(), list(request.raw_input_contents) or None)
    return info.value.message


def test_what_the_fuzz_found_answers_as_triton():
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="OUTPUT0").parameters["classification"].string_param = "abc"
    assert _refusal(request) == "invalid value type for 'classification' parameter, expected int64_param"
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="INPUT0", datatype="INT64", shape=[64556585, 52375778473528, 157589662895, 0])
    assert _refusal(request) == "unable to find data for input tensor 'INPUT0' for model 'm' in request."
    # no element among dimensions numpy cannot hold: decoded as bytes, for validation to refuse
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="INPUT0", datatype="UINT64", shape=[2588205, 140737488355329, 387328, 0])
    decoded = decode_request(request, SharedMemory(), [b""])
    assert decoded.inputs[0].data.size == 0 and decoded.inputs[0].shape == [2588205, 140737488355329, 387328, 0]


def test_more_dimensions_than_numpy_holds_are_left_for_validation():
    # Triton 2.51 decodes them and refuses the shape ("unexpected shape for input ...") or the datatype
    for datatype, field, value in (("BYTES", "bytes_contents", b"abc"), ("FP32", "fp32_contents", 1.0)):
        request = pb.ModelInferRequest(model_name="m")
        tensor = request.inputs.add(name="INPUT0", datatype=datatype, shape=[1] * 70)
        getattr(tensor.contents, field).append(value)
        decoded = decode_request(request, SharedMemory())
        assert decoded.inputs[0].shape == [1] * 70 and decoded.inputs[0].data.size == 1
