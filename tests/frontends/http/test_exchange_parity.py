"""HTTP infer answers that must be Triton's: FP16 outputs asked for as JSON, and an unknown model
whatever the body (the model is looked up first). gRPC for the unknown model too.

Expected values were captured from Triton 2.51.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from python_models import python_models_server
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

TENSORS = '[pb_utils.Tensor("OUTPUT0", x), pb_utils.Tensor("OUTPUT1", x.astype(np.float32))]'

CONFIG = (
    'name: "fp16" backend: "python" max_batch_size: 0 input [{ name: "INPUT0" data_type: TYPE_FP16 dims: [ -1 ] }] '
    'output [{ name: "OUTPUT0" data_type: TYPE_FP16 dims: [ -1 ] }, '
    '{ name: "OUTPUT1" data_type: TYPE_FP32 dims: [ -1 ] }]'
)


server = python_models_server({"fp16": (CONFIG, TENSORS)})


FP16_JSON = {"error": "sending FP16 data via JSON is not supported. Please use the binary data format for output"}
AS_JSON = {"binary_data": False}
INPUT = {"name": "INPUT0", "datatype": "FP16", "shape": [3], "parameters": {"binary_data_size": 6}}


def _post(server, model: str, document: dict) -> requests.Response:
    header = json.dumps(document).encode()
    data = np.array([1, 2, 3], dtype=np.float16).tobytes()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return requests.post(f"http://{server.http}/v2/models/{model}/infer", data=header + data, headers=headers)


# captured from Triton 2.51: every request that would send FP16 as JSON is refused whole
@pytest.mark.parametrize(
    "extra",
    [
        {"outputs": [{"name": "OUTPUT0", "parameters": AS_JSON}]},
        {"outputs": [{"name": "OUTPUT0"}]},
        {"outputs": [{"name": "OUTPUT1", "parameters": AS_JSON}, {"name": "OUTPUT0", "parameters": AS_JSON}]},
        {},
        {"parameters": {"binary_data_output": False}},
        {"parameters": {"binary_data_output": True}, "outputs": [{"name": "OUTPUT0", "parameters": AS_JSON}]},
        {"id": "abc", "outputs": [{"name": "OUTPUT0", "parameters": AS_JSON}]},
    ],
)
def test_fp16_output_as_json_fails_the_request(server, extra):
    answer = _post(server, "fp16", {"inputs": [INPUT], **extra})
    assert answer.status_code == 400
    assert answer.json() == FP16_JSON


def test_fp16_input_with_only_a_json_fp32_output_is_answered(server):
    answer = _post(server, "fp16", {"inputs": [INPUT], "outputs": [{"name": "OUTPUT1", "parameters": AS_JSON}]})
    assert answer.status_code == 200  # captured from Triton 2.51
    assert answer.json() == {
        "model_name": "fp16",
        "model_version": "1",
        "outputs": [{"name": "OUTPUT1", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}],
    }


NOPE = {"error": "Request for unknown model: 'nope' is not found"}


# captured from Triton 2.51: the model is looked up before the body is read
@pytest.mark.parametrize(
    "path, body, headers, expected",
    [
        ("nope", b"{}", {}, NOPE),
        ("nope", b"", {}, NOPE),
        ("nope", b"xx", {}, NOPE),
        ("nope", b'{"inputs": []}', {}, NOPE),
        ("nope", b"{}", {"Inference-Header-Content-Length": "2"}, NOPE),
        ("nope", b"{}", {"Inference-Header-Content-Length": "50"}, NOPE),
        ("nope", b"garbage", {"Content-Encoding": "gzip"}, NOPE),
        ("nope/versions/3", b"{}", {}, NOPE),
        ("fp16/versions/3", b"{}", {}, {"error": "Request for unknown model: 'fp16' version 3 is not found"}),
    ],
)
def test_http_unknown_model_whatever_the_body(server, path, body, headers, expected):
    answer = requests.post(f"http://{server.http}/v2/models/{path}/infer", data=body, headers=headers)
    assert answer.status_code == 404
    assert answer.json() == expected


def test_http_unknown_model_before_a_too_large_body(tmp_path):
    running = RunningServer([tmp_path], "--http-max-input-size=16")
    try:
        answer = requests.post(f"http://{running.http}/v2/models/nope/infer", data=b"x" * 64)
    finally:
        running.stop()
    assert answer.status_code == 404  # Triton 2.51 answers 404 to a 65 MiB body past its 64 MiB limit
    assert answer.json() == NOPE


@pytest.mark.parametrize(
    "model, version, message",
    [
        ("nope", "", "Request for unknown model: 'nope' is not found"),
        ("fp16", "3", "Request for unknown model: 'fp16' version 3 is not found"),
    ],
)
@pytest.mark.parametrize("with_input", [False, True])
def test_grpc_unknown_model(server, model, version, message, with_input):
    client = grpcclient.InferenceServerClient(server.grpc)
    inputs = []
    if with_input:
        inputs = [grpcclient.InferInput("INPUT0", [2], "FP32")]
        inputs[0].set_data_from_numpy(np.array([1, 2], dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, inputs, model_version=version)
    assert info.value.status() == "StatusCode.NOT_FOUND"  # captured from Triton 2.51
    assert info.value.message() == message
