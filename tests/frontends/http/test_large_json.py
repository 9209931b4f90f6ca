"""frontends.http.large_json: a body decoded in pieces gives exactly what the whole-body decode gives
(requests, errors and their texts); answers written in pieces are byte for byte the same."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.frontends.http import large_json
from tritonlite.frontends.http.codec import decode_request, encode_response


@pytest.fixture()
def in_pieces(monkeypatch):
    """Every body and array counts as large, and pieces are a few bytes long."""
    monkeypatch.setattr(large_json, "SPLIT", 0)
    monkeypatch.setattr(large_json, "BIG_ARRAY", 4)
    monkeypatch.setattr(large_json, "PIECE", 8)
    monkeypatch.setattr(large_json, "WINDOW", 128)


def outcome(text: bytes):
    try:
        request, binary = decode_request("m", "", text, None)
    except TritonError as exc:
        return ("error", exc.kind, exc.message)
    return [(t.name, t.datatype, t.shape, t.data.dtype, t.data.tolist()) for t in request.inputs], binary


def one(datatype: str, shape: list[int], data: str, extra: str = "") -> bytes:
    return (
        f'{{"inputs":[{{"name":"X","datatype":"{datatype}","shape":{orjson.dumps(shape).decode()},'
        f'"data":{data}}}]{extra}}}'
    ).encode()


BODIES = [
    one("FP32", [12], "[1, 2, 3.5, -4, 5e3, 6,7,8,9,10,11,12]"),
    one("INT64", [4, 2], "[[1,2],[3,4],[5,6],[7,8]]"),
    one("INT32", [2, 2, 3], "[[[1,2,3],[4,5,6]],[[7,8,9],[10,11,12]]]"),
    one("INT8", [6], "[1,2,3,4,5,300]"),  # out of range
    one("UINT16", [6], "[1,2,3,4,5,-6]"),  # negative
    one("INT32", [6], "[1,2,3,4,5,6.5]"),  # not an integer
    one("FP32", [7], "[1,2,3,4,5,6]"),  # count
    one("FP32", [6], "[1,2,3,4,5,6]", ',"parameters":{"binary_data_output":true}'),
    one("FP32", [6], "[1 2,3,4,5,6,7]"),  # invalid JSON
    one("FP32", [6], "[1,[2,3],4,5,6]"),  # ragged
    one("FP32", [5], "[[],[1,2,3,4,5]]"),  # empty list inside
    one("FP32", [6], "[[1,2,3][4,5,6]]"),  # no comma between lists
    one("BYTES", [6], "[1,2,3,4,5,6]"),
    one("BOOL", [6], "[1,0,1,0,1,0]"),
    one("FP32", [6], "[1,2,3,4,5,6]").replace(b'"inputs"', b'"parameters":{"data":[1,2,3,4,5,6,7,8]},"inputs"'),
    b'{"inputs":[{"name":"X","datatype":"FP32","shape":[6],"data":[1,2,3,4,5,6]}],"outputs":[{"name":"Y"}]}  ',
    b'{"inputs":[{"name":"X","datatype":"FP32","shape":[6],"data":[1,2,3,4,5,6]},]}',  # trailing comma
]


@pytest.mark.parametrize("text", BODIES)
def test_decoded_in_pieces_as_decoded_whole(text, in_pieces, monkeypatch):
    pieces = outcome(text)
    monkeypatch.setattr(large_json, "SPLIT", 1 << 40)
    assert pieces == outcome(text)


def test_the_arrays_are_cut_out_and_parsed_in_pieces(in_pieces):
    text = one("FP32", [4, 3], "[[1,2,3],[4,5,6],[7,8,9],[10,11,12]]")
    document = large_json.load(text)
    array = document["inputs"][0]["data"]
    assert isinstance(array, large_json.NumberArray)
    pieces = array.pieces()
    assert len(pieces) > 1 and large_json.count(pieces) == 12
    assert [v for values in large_json.iter_numbers(pieces) for v in values] == list(range(1, 13))


def test_a_random_body_in_pieces(in_pieces, monkeypatch):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((50, 7)).astype(np.float32)
    text = orjson.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [50, 7], "data": values.tolist()}]})
    pieces = outcome(text)
    monkeypatch.setattr(large_json, "SPLIT", 1 << 40)
    assert pieces == outcome(text)
    assert np.array_equal(np.array(pieces[0][0][4], np.float32), values)


def test_answers_written_in_pieces_are_the_same(monkeypatch):
    response = InferResponse("m", "1", "", [
        InferTensor("F", "FP32", [3, 100], np.linspace(0, 1, 300, dtype=np.float32).reshape(3, 100)),
        InferTensor("I", "INT64", [1000], np.arange(1000, dtype=np.int64)),
        InferTensor("B", "BYTES", [2], np.array([b"ok", "é".encode()], dtype=object)),
    ])  # fmt: skip
    request = InferRequest("m", "1")
    whole = encode_response(response, request, False)
    monkeypatch.setattr(large_json, "PIECE", 7)
    assert encode_response(response, request, False) == whole


def test_bytes_that_are_not_utf8_are_written_as_they_are():
    values = np.array([b"\xff\n", b'q"\\', b"\x01"], dtype=object)
    response = InferResponse("m", "1", "", [InferTensor("B", "BYTES", [3], values)])
    payload, _ = encode_response(response, InferRequest("m", "1"), False)
    assert payload.endswith(b'"data":["\xff\\n","q\\"\\\\","\\u0001"]}]}')
