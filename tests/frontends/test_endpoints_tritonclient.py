"""Every control endpoint and infer feature through the real tritonclient, HTTP and gRPC."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ADD_SUB_INPUTS = [
    {"name": "INPUT0", "datatype": "FP32", "shape": [4]},
    {"name": "INPUT1", "datatype": "FP32", "shape": [4]},
]


def add_sub_inputs(module, a: np.ndarray, b: np.ndarray, binary: bool = True) -> list:
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    if module is httpclient:
        inputs[0].set_data_from_numpy(a, binary_data=binary)
        inputs[1].set_data_from_numpy(b, binary_data=binary)
    else:
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
    return inputs


def test_http_control_endpoints(server):
    client = httpclient.InferenceServerClient(server.http)
    assert client.is_server_live()
    meta = client.get_server_metadata()
    assert meta["name"] == "triton" and meta["version"] == "2.51.0" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("add_sub")
    assert model["versions"] == ["1"] and model["platform"] == "python"
    assert [dict(i) for i in model["inputs"]] == ADD_SUB_INPUTS
    assert client.get_model_metadata("add_sub", "1") == model
    config = client.get_model_config("identity")
    assert config["max_batch_size"] == 8 and config["dynamic_batching"]["preferred_batch_size"] == [8]
    assert config["input"][0]["dims"] == [-1] and config["instance_group"][0]["name"] == "identity_0"
    assert client.is_model_ready("add_sub") and client.is_model_ready("add_sub", "1")
    assert not client.is_model_ready("add_sub", "2") and not client.is_model_ready("nope")
    index = {row["name"]: row for row in client.get_model_repository_index()}
    assert index["add_sub"] == {"name": "add_sub", "version": "1", "state": "READY"}
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope' is not found"):
        client.get_model_metadata("nope")


def test_grpc_control_endpoints(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    assert client.is_server_live()
    meta = client.get_server_metadata()
    assert meta.name == "triton" and "model_repository" in meta.extensions
    model = client.get_model_metadata("add_sub")
    assert list(model.versions) == ["1"] and [i.name for i in model.inputs] == ["INPUT0", "INPUT1"]
    assert list(client.get_model_metadata("identity").inputs[0].shape) == [-1, -1]
    config = client.get_model_config("add_sub").config
    assert config.name == "add_sub" and config.backend == "python" and list(config.input[0].dims) == [4]
    assert client.is_model_ready("add_sub", "1") and not client.is_model_ready("add_sub", "3")
    index = {m.name: m for m in client.get_model_repository_index().models}
    assert index["string_upper"].state == "READY"
    with pytest.raises(InferenceServerException) as info:
        client.get_model_config("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("binary", [True, False])
def test_http_infer_json_and_binary_with_id_and_outputs(server, binary):
    client = httpclient.InferenceServerClient(server.http)
    a, b = np.array([1, 2, 3, 4], np.float32), np.array([0.5] * 4, np.float32)
    outputs = [httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    result = client.infer("add_sub", add_sub_inputs(httpclient, a, b, binary), outputs=outputs, request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.as_numpy("OUTPUT0") is None


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_http_request_and_response_compression(server, algorithm):
    client = httpclient.InferenceServerClient(server.http)
    a, b = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    result = client.infer(
        "add_sub",
        add_sub_inputs(httpclient, a, b),
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def test_classification_http_and_grpc(server):
    data = np.array([2.0], np.float32)
    http = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", [1], "FP32")
    inp.set_data_from_numpy(data)
    result = http.infer("labels", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=2)])
    assert [v.decode() for v in result.as_numpy("OUTPUT0")] == ["1.400000:1:dog", "0.300000:3:fish"]
    grpc = grpcclient.InferenceServerClient(server.grpc)
    ginp = grpcclient.InferInput("INPUT0", [1], "FP32")
    ginp.set_data_from_numpy(data)
    gresult = grpc.infer("labels", [ginp], outputs=[grpcclient.InferRequestedOutput("OUTPUT0", class_count=3)])
    assert [v.decode() for v in gresult.as_numpy("OUTPUT0")] == ["1.400000:1:dog", "0.300000:3:fish", "0.200000:0:cat"]


def test_grpc_errors_keep_triton_codes(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    a = np.arange(3, dtype=np.float32)
    inp = [grpcclient.InferInput("INPUT0", [3], "FP32"), grpcclient.InferInput("INPUT1", [3], "FP32")]
    inp[0].set_data_from_numpy(a)
    inp[1].set_data_from_numpy(a)
    with pytest.raises(InferenceServerException) as info:
        client.infer("add_sub", inp)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unexpected shape for input 'INPUT0' for model 'add_sub'. Expected [4], got [3]" in info.value.message()


def test_grpc_stream_infer_answers_every_request(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(5):
            a = np.full(4, i, np.float32)
            client.async_stream_infer("add_sub", add_sub_inputs(grpcclient, a, a), request_id=str(i))
        client.async_stream_infer("nope", add_sub_inputs(grpcclient, a, a), request_id="bad")
        got = [answers.get(timeout=10) for _ in range(6)]
    finally:
        client.stop_stream()
    results = {r.get_response().id: r for r, e in got if e is None}
    errors = [e for _, e in got if e is not None]
    assert sorted(results) == ["0", "1", "2", "3", "4"]
    for key, result in results.items():
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full(4, 2 * int(key), np.float32))
    assert len(errors) == 1 and "Request for unknown model: 'nope' is not found" in str(errors[0])


def test_big_message_over_grpc_and_http(server):
    """16 MB tensors pass both frontends (gRPC default limits would refuse 4 MB+)."""
    data = np.random.default_rng(0).random(4 * 1024 * 1024, dtype=np.float32)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    inp = grpcclient.InferInput("INPUT0", [1, data.size], "FP32")
    inp.set_data_from_numpy(data.reshape(1, -1))
    np.testing.assert_array_equal(grpc.infer("identity", [inp]).as_numpy("OUTPUT0").reshape(-1), data)
    http = httpclient.InferenceServerClient(server.http)
    hinp = httpclient.InferInput("INPUT0", [1, data.size], "FP32")
    hinp.set_data_from_numpy(data.reshape(1, -1))
    np.testing.assert_array_equal(http.infer("identity", [hinp]).as_numpy("OUTPUT0").reshape(-1), data)


def test_bls_call_from_a_python_model(server):
    """A model calls add_sub through InferenceRequest.exec (business logic scripting)."""
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", [4], "FP32")
    inp.set_data_from_numpy(np.array([1, 2, 3, 4], np.float32))
    result = client.infer("bls_double", [inp])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), [2, 4, 6, 8])


def test_statistics_over_http_and_grpc(server):
    http = httpclient.InferenceServerClient(server.http)
    before = http.get_inference_statistics("add_sub")["model_stats"][0]
    a = np.ones(4, np.float32)
    for _ in range(3):
        http.infer("add_sub", add_sub_inputs(httpclient, a, a))
    bad = [httpclient.InferInput("INPUT0", [3], "FP32"), httpclient.InferInput("INPUT1", [3], "FP32")]
    for item in bad:
        item.set_data_from_numpy(np.ones(3, np.float32))
    with pytest.raises(InferenceServerException):
        http.infer("add_sub", bad)  # refused by validation: not counted, as in Triton
    after = http.get_inference_statistics("add_sub")["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 3
    assert after["execution_count"] - before["execution_count"] == 3
    success = after["inference_stats"]["success"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 3 and success["ns"] > 0
    assert after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"]
    assert after["batch_stats"][0]["batch_size"] == 1
    grpc = grpcclient.InferenceServerClient(server.grpc)
    stats = grpc.get_inference_statistics("add_sub", "1").model_stats[0]
    assert stats.inference_count == after["inference_count"] and stats.version == "1"
    names = {row["name"] for row in http.get_inference_statistics()["model_stats"]}
    assert {"add_sub", "identity", "string_upper"} <= names
    with pytest.raises(InferenceServerException, match="requested model 'nope' is not available"):
        http.get_inference_statistics("nope")
