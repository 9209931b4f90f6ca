"""ONNX models through a real server and the real tritonclient: auto-complete, batching, errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import requests

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.grpc.aio as aiogrpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from onnx_models import add_sub, identity, write_model  # noqa: E402
from serverutil import RunningServer  # noqa: E402

PARTIAL_WITH_DELAY = """
backend: "onnxruntime"
dynamic_batching { max_queue_delay_microseconds: 200000 }
"""

FULL_CONFIG = """
platform: "onnxruntime_onnx"
max_batch_size: 8
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] }]
dynamic_batching { }
"""


@pytest.fixture(scope="module")
def onnx_repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_repository")
    write_model(root, "auto", add_sub())  # no config.pbtxt at all
    write_model(root, "configured", add_sub(), FULL_CONFIG)
    write_model(root, "delayed", add_sub(), PARTIAL_WITH_DELAY)
    write_model(root, "strings", identity("STRING", ("batch", 2)))
    corrupt = root / "corrupt" / "1"
    corrupt.mkdir(parents=True)
    (corrupt / "model.onnx").write_bytes(b"\x08\x01 definitely not a model")
    return root


@pytest.fixture(scope="module")
def onnx_server(onnx_repository):
    running = RunningServer([onnx_repository], "--exit-on-error=false")
    yield running
    running.stop()


def direct(x: np.ndarray, y: np.ndarray, tmp_path) -> list[np.ndarray]:
    import onnx

    path = tmp_path / "direct.onnx"
    onnx.save(add_sub(), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"INPUT0": x, "INPUT1": y})


def test_model_without_config_gets_a_completed_config(onnx_server):
    config = requests.get(f"http://{onnx_server.http}/v2/models/auto/config", timeout=10).json()
    assert config["name"] == "auto"
    assert config["backend"] == "onnxruntime" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 4
    assert "dynamic_batching" in config
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("INPUT0", "TYPE_FP32", [4]),
        ("INPUT1", "TYPE_FP32", [4]),
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [
        ("OUTPUT0", "TYPE_FP32", [4]),
        ("OUTPUT1", "TYPE_FP32", [4]),
    ]
    assert config["default_model_filename"] == "model.onnx"
    metadata = requests.get(f"http://{onnx_server.http}/v2/models/auto", timeout=10).json()
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}


def test_partial_config_keeps_its_scheduler(onnx_server):
    config = requests.get(f"http://{onnx_server.http}/v2/models/delayed/config", timeout=10).json()
    assert config["max_batch_size"] == 4
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 200000
    assert [t["name"] for t in config["input"]] == ["INPUT0", "INPUT1"]


@pytest.mark.parametrize("model", ["auto", "configured"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_outputs_equal_a_direct_session_run(onnx_server, model, protocol, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(onnx_server.http if protocol == "http" else onnx_server.grpc)
    inputs = [module.InferInput("INPUT0", [3, 4], "FP32"), module.InferInput("INPUT1", [3, 4], "FP32")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(y)
    result = client.infer(model, inputs)
    expected = direct(x, y, tmp_path)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected[0])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), expected[1])
    only = client.infer(model, inputs, outputs=[module.InferRequestedOutput("OUTPUT1")])
    assert only.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(only.as_numpy("OUTPUT1"), expected[1])


async def _burst(url: str, model: str, count: int) -> list:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for i in range(count):
            data = np.full((1, 4), float(i), np.float32)
            inputs = [aiogrpc.InferInput("INPUT0", [1, 4], "FP32"), aiogrpc.InferInput("INPUT1", [1, 4], "FP32")]
            inputs[0].set_data_from_numpy(data)
            inputs[1].set_data_from_numpy(data)
            calls.append(client.infer(model, inputs, request_id=str(i)))
        return await asyncio.gather(*calls)
    finally:
        await client.close()


def test_concurrent_requests_are_batched(onnx_server):
    results = asyncio.run(_burst(onnx_server.grpc, "delayed", 8))
    for i, result in enumerate(results):  # each client gets its own rows
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 4), 2.0 * i, np.float32))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros((1, 4), np.float32))
    stats = requests.get(f"http://{onnx_server.http}/v2/models/delayed/stats", timeout=10).json()
    model_stats = stats["model_stats"][0]
    assert model_stats["inference_count"] == 8
    assert model_stats["execution_count"] <= 2  # 8 requests, max batch 4, 200 ms to gather them


def test_string_model_without_config(onnx_server):
    client = httpclient.InferenceServerClient(onnx_server.http)
    data = np.array([["héllo".encode(), b"x"], [b"", b"yz"]], dtype=object)
    inp = httpclient.InferInput("IN", [2, 2], "BYTES")
    inp.set_data_from_numpy(data)
    result = client.infer("strings", [inp])
    assert result.as_numpy("OUT").tolist() == data.tolist()


def test_corrupt_model_is_unavailable_with_the_reason(onnx_server):
    index = requests.post(f"http://{onnx_server.http}/v2/repository/index", timeout=10).json()
    entry = next(e for e in index if e["name"] == "corrupt")
    assert entry["state"] == "UNAVAILABLE"
    assert "onnx runtime error" in entry["reason"]
    ready = requests.get(f"http://{onnx_server.http}/v2/models/auto/ready", timeout=10)
    assert ready.status_code == 200


def test_backend_config_sets_the_default_max_batch_size(tmp_path):
    write_model(tmp_path, "auto", add_sub())
    server = RunningServer([tmp_path], "--backend-config=onnxruntime,default-max-batch-size=8")
    try:
        config = requests.get(f"http://{server.http}/v2/models/auto/config", timeout=10).json()
        assert config["max_batch_size"] == 8
        client = httpclient.InferenceServerClient(server.http)
        x = np.ones((8, 4), np.float32)
        inputs = [httpclient.InferInput("INPUT0", [8, 4], "FP32"), httpclient.InferInput("INPUT1", [8, 4], "FP32")]
        inputs[0].set_data_from_numpy(x)
        inputs[1].set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("auto", inputs).as_numpy("OUTPUT0"), 2 * x)
    finally:
        server.stop()
