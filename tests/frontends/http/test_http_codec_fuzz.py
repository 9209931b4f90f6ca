"""Fuzz of the HTTP infer codec: whatever the body, decoding raises TritonError (answered in Triton's
format) and nothing else."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlite.core.errors import TritonError
from tritonlite.frontends.http.codec import decode_request
from tritonlite.sharedmem.registry import SharedMemory

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))

DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "UINT64", "FP16", "BF16", "FP32", "FP64", "BYTES", "X"]
PARAMETER_KEYS = [
    "binary_data_size", "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size", "binary_data",
    "binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "other",
]  # fmt: skip

leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
value = st.recursive(
    leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip
parameters = st.one_of(value, st.dictionaries(st.sampled_from(PARAMETER_KEYS), value, max_size=4))
tensor = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=4), value),
        "datatype": st.one_of(st.sampled_from(DATATYPES), value),
        "shape": st.one_of(st.lists(st.integers(-2, 2**40), max_size=4), value),
        "data": value,
        "parameters": parameters,
    },
)
output = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=4), value),
        "parameters": st.one_of(
            st.dictionaries(st.sampled_from(PARAMETER_KEYS), value, max_size=3),
            st.fixed_dictionaries({"classification": st.integers(0, 5)}),
        ),
    },
)
document = st.fixed_dictionaries(
    {},
    optional={
        "id": value,
        "inputs": st.one_of(st.lists(tensor, max_size=3), value),
        "outputs": st.one_of(st.lists(output, max_size=3), value),
        "parameters": parameters,
    },
)


def decodes_or_refuses(body: bytes, header_length: int | None) -> None:
    try:
        decode_request("m", "", body, header_length, SharedMemory())
    except TritonError:
        pass


@FUZZ
@given(document, st.binary(max_size=64), st.one_of(st.none(), st.just(-1), st.integers(0, 80)))
def test_json_documents(doc, tail, header_length):
    body = json.dumps(doc).encode()  # integers beyond 64 bits too
    if header_length == -1:  # the JSON part exactly, then binary tensor data
        header_length = len(body)
    decodes_or_refuses(body + tail if header_length is not None else body, header_length)


@FUZZ
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 220)))
def test_arbitrary_bytes(body, header_length):
    decodes_or_refuses(body, header_length)


VALID = orjson.dumps(
    {
        "id": "1",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
            {"name": "INPUT1", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}},
        ],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
    }
)
VALID_BODY = VALID + bytes(16) + b"\x03\x00\x00\x00abc"


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_BODY)), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(-4, 4))  # fmt: skip
def test_byte_mutations_of_a_valid_binary_request(flips, length_shift):
    body = bytearray(VALID_BODY)
    for position, byte in flips:
        if position < len(body):
            body[position] = byte
    decodes_or_refuses(bytes(body), len(VALID) + length_shift)


def test_classification_must_be_an_integer():
    # Triton 2.51: 500 "Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer"
    body = orjson.dumps({
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": [1]}}],
    })  # fmt: skip
    with pytest.raises(TritonError) as info:
        decode_request("m", "", body, None)
    assert info.value.message == (
        "Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer"
    )


def test_json_data_with_more_dimensions_than_numpy_holds():
    # Triton 2.51: 400 "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model ..." (validation)
    body = orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1] * 70, "data": [1.0]}]})
    request, _ = decode_request("m", "", body, None)
    assert request.inputs[0].shape == [1] * 70  # for validation to refuse, with Triton's text
