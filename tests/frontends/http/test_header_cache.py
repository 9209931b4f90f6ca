"""frontends.http.header_cache: plain JSON infer headers decoded once, and validated once per model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferResponse, InferTensor
from tritonlite.frontends.http.codec import decode_request, encode_response
from tritonlite.frontends.http.header_cache import HeaderCache


def body_of(document: dict, *arrays: np.ndarray) -> tuple[bytes, int]:
    header = json.dumps(document, separators=(",", ":")).encode()
    return header + b"".join(a.tobytes() for a in arrays), len(header)


def binary_input(name: str, datatype: str, shape: list[int], size: int) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


PLAIN = {
    "inputs": [
        {"name": "A", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}},
        {"name": "B", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
    ],
    "outputs": [{"name": "Y", "parameters": {"binary_data": True, "classification": 2}}, {"name": "Z"}],
}


def arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((1, 3)).astype(np.float32), rng.integers(0, 100, 2).astype(np.int64)


def same_request(left, right) -> None:
    assert (left.model_name, left.model_version, left.id) == (right.model_name, right.model_version, right.id)
    assert [(t.name, t.datatype, t.shape) for t in left.inputs] == [(t.name, t.datatype, t.shape) for t in right.inputs]
    for ours, theirs in zip(left.inputs, right.inputs, strict=True):
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert ours.data.dtype == theirs.data.dtype
    assert [(o.name, o.parameters, o.class_count) for o in left.outputs] == [
        (o.name, o.parameters, o.class_count) for o in right.outputs
    ]


def test_a_plain_header_is_decoded_once_and_rebuilt_with_the_new_data():
    cache = HeaderCache()
    first_body, length = body_of(PLAIN, *arrays(1))
    request, binary_default, entry = cache.decode("m", "1", first_body, length)
    assert entry is not None and len(cache) == 1 and binary_default is False
    same_request(request, decode_request("m", "1", first_body, length)[0])

    second_body, _ = body_of(PLAIN, *arrays(2))
    again, _, same_entry = cache.decode("m", "1", second_body, length)
    assert same_entry is entry and len(cache) == 1
    same_request(again, decode_request("m", "1", second_body, length)[0])
    np.testing.assert_array_equal(again.inputs[0].data, arrays(2)[0])
    # a new request each time: nothing mutable is shared between them
    assert again is not request and again.inputs[0].shape is not request.inputs[0].shape
    assert again.outputs[0].parameters is not request.outputs[0].parameters
    # the same header for another model or version is another entry
    cache.decode("other", "1", second_body, length)
    cache.decode("m", "", second_body, length)
    assert len(cache) == 3


def test_binary_data_output_default_is_kept():
    document = {**PLAIN, "parameters": {"binary_data_output": True}, "outputs": None}
    del document["outputs"]
    body, length = body_of(document, *arrays(1))
    cache = HeaderCache()
    for _ in range(2):
        request, binary_default, entry = cache.decode("m", "", body, length)
        assert binary_default is True and entry is not None and request.outputs is None


@pytest.mark.parametrize(
    "change",
    [
        {"id": "r7"},
        {"parameters": {"sequence_id": 3, "sequence_start": True}},
        {"parameters": {"priority": 1}},
        {"parameters": {"custom": "x"}},
    ],
)
def test_headers_with_an_id_or_parameters_are_decoded_every_time(change):
    body, length = body_of({**PLAIN, **change}, *arrays(1))
    cache = HeaderCache()
    request, _, entry = cache.decode("m", "", body, length)
    assert entry is None and len(cache) == 0
    same_request(request, decode_request("m", "", body, length)[0])


def test_bytes_json_data_and_shared_memory_are_decoded_every_time():
    strings = np.array([b"ab", b"c"], dtype=object)
    raw = b"".join(len(s).to_bytes(4, "little") + s for s in strings)
    document = {
        "inputs": [{"name": "S", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}]
    }
    header = json.dumps(document).encode()
    cache = HeaderCache()
    assert cache.decode("m", "", header + raw, len(header))[2] is None
    document = {"inputs": [{"name": "A", "datatype": "FP32", "shape": [1], "data": [1.5]}]}
    body = json.dumps(document).encode()
    assert cache.decode("m", "", body, len(body))[2] is None
    assert len(cache) == 0


def test_a_cached_header_with_binary_data_of_another_size_gets_decode_requests_error():
    body, length = body_of(PLAIN, *arrays(1))
    cache = HeaderCache()
    cache.decode("m", "", body, length)
    for wrong in (body + b"\0\0\0\0", body[:-4]):
        with pytest.raises(TritonError) as ours:
            cache.decode("m", "", wrong, length)
        with pytest.raises(TritonError) as theirs:
            decode_request("m", "", wrong, length)
        assert (ours.value.kind, ours.value.message) == (theirs.value.kind, theirs.value.message)


def test_requests_of_one_header_carry_it_as_their_validation_key():
    body, length = body_of(PLAIN, *arrays(1))
    cache = HeaderCache()
    first, _, entry = cache.decode("m", "", body, length)
    second = cache.decode("m", "", body, length)[0]
    assert first.validation_key is None  # decoded from JSON: validated as any request
    assert second.validation_key is entry  # built from the entry


def test_the_cache_starts_over_when_full():
    cache = HeaderCache(limit=3)
    for size in range(1, 6):
        document = {
            "inputs": [{"name": "A", "datatype": "FP32", "shape": [size], "parameters": {"binary_data_size": 4 * size}}]
        }
        body, length = body_of(document, np.zeros(size, np.float32))
        cache.decode("m", "", body, length)
        assert len(cache) <= 3
    assert len(cache) == 2


# --- answers ----------------------------------------------------------------------------------------

BINARY_OUT = {
    "inputs": [binary_input("A", "FP32", [2], 8)],
    "outputs": [{"name": "Y", "parameters": {"binary_data": True}}, {"name": "Z", "parameters": {"binary_data": True}}],
}


def answer(y: np.ndarray, z: np.ndarray, datatype: str = "FP32") -> InferResponse:
    return InferResponse(
        "m", "1", "", [InferTensor("Y", datatype, list(y.shape), y), InferTensor("Z", "INT32", list(z.shape), z)]
    )


def test_answers_with_the_same_outputs_reuse_the_json_header_and_match_encode_response():
    body, length = body_of(BINARY_OUT, np.ones(2, np.float32))
    request, binary_default, entry = HeaderCache().decode("m", "1", body, length)
    rng = np.random.default_rng(5)
    responses = [
        answer(rng.standard_normal((1, 3)).astype(np.float32), np.arange(4, dtype=np.int32)),
        answer(rng.standard_normal((1, 3)).astype(np.float32), np.arange(4, 8, dtype=np.int32)),  # same shapes
        answer(rng.standard_normal((2, 3)).astype(np.float32), np.arange(4, dtype=np.int32)),  # another shape
        answer(rng.standard_normal((2, 3)), np.arange(4, dtype=np.int32)),  # float64 data under FP32: another size
    ]
    headers_seen = []
    for response in responses:
        payload, json_length, headers = entry.encode(response, request)
        assert (payload, json_length) == encode_response(response, request, binary_default)
        assert headers == [(b"content-type", b"application/octet-stream"),
                           (b"inference-header-content-length", str(json_length).encode())]  # fmt: skip
        headers_seen.append(headers)
    assert headers_seen[1] is headers_seen[0]  # the second answer came from the kept header
    assert headers_seen[2] is not headers_seen[1] and headers_seen[3] is not headers_seen[2]


def test_outputs_that_tensor_buffer_gives_as_bytes_are_answered(monkeypatch):
    # dtypes that cannot export a buffer (ml_dtypes' bfloat16 from some models) come out of
    # tensor_buffer as bytes; the answer cache measures those too
    from tritonlite.frontends.http import header_cache

    monkeypatch.setattr(header_cache, "tensor_buffer", lambda datatype, data: np.ascontiguousarray(data).tobytes())
    body, length = body_of(BINARY_OUT, np.ones(2, np.float32))
    request, binary_default, entry = HeaderCache().decode("m", "1", body, length)
    for seed in (1, 2):
        response = answer(np.full((1, 3), seed, np.float32), np.arange(4, dtype=np.int32))
        payload, json_length, _ = entry.encode(response, request)
        assert (payload, json_length) == encode_response(response, request, binary_default)


def test_json_and_bytes_answers_are_encoded_every_time():
    body, length = body_of({"inputs": BINARY_OUT["inputs"], "outputs": [{"name": "Y"}]}, np.ones(2, np.float32))
    request, binary_default, entry = HeaderCache().decode("m", "1", body, length)
    response = InferResponse("m", "1", "", [InferTensor("Y", "FP32", [2], np.array([0.5, 1.5], np.float32))])
    for _ in range(2):
        assert entry.encode(response, request) == (*encode_response(response, request, binary_default), None)
    body, length = body_of(BINARY_OUT, np.ones(2, np.float32))
    request, binary_default, entry = HeaderCache().decode("m", "1", body, length)
    strings = np.array([b"a", b"bcd"], dtype=object)
    response = InferResponse("m", "1", "", [InferTensor("Y", "BYTES", [2], strings)])
    first = entry.encode(response, request)
    response.outputs[0].data = np.array([b"longer", b"x"], dtype=object)
    second = entry.encode(response, request)
    assert second[:2] == encode_response(response, request, binary_default) and second[2] is not first[2]


# --- through a server: a reloaded model with another config validates the same header again ---------


def add_sub_inputs(size: int) -> list[httpclient.InferInput]:
    inputs = []
    for index in range(2):
        tensor = httpclient.InferInput(f"INPUT{index}", [size], "FP32")
        tensor.set_data_from_numpy(np.arange(size, dtype=np.float32) * (index + 1), binary_data=True)
        inputs.append(tensor)
    return inputs


def test_a_reloaded_model_validates_a_cached_header_again(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub", ignore=shutil.ignore_patterns("__pycache__"))
    server = RunningServer([tmp_path], "--model-control-mode=explicit", "--load-model=add_sub")
    try:
        client = httpclient.InferenceServerClient(server.http)
        outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)]
        for _ in range(3):  # the same header each time: decoded once, validated once
            result = client.infer("add_sub", add_sub_inputs(4), outputs=outputs)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(4, dtype=np.float32) * 3)
        config = tmp_path / "add_sub" / "config.pbtxt"
        config.write_text(config.read_text().replace("dims: [ 4 ]", "dims: [ 8 ]"))
        client.load_model("add_sub")
        with pytest.raises(InferenceServerException) as refused:
            client.infer("add_sub", add_sub_inputs(4), outputs=outputs)
        assert "unexpected shape for input 'INPUT0' for model 'add_sub'. Expected [8], got [4]" in str(refused.value)
        result = client.infer("add_sub", add_sub_inputs(8), outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(8, dtype=np.float32) * 3)
    finally:
        server.stop()
