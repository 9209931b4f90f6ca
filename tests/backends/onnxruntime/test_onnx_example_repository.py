"""The ONNX example repository through tritonclient: with and without config.pbtxt, batching,
classification, outputs equal to onnxruntime's own run, and a corrupt model."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

import tritonclient.grpc.aio as aiogrpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from conftest import ROOT  # noqa: E402
from serverutil import RunningServer  # noqa: E402

EXAMPLE = ROOT / "examples" / "onnx_model_repository"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("onnx") / "repo"
    shutil.copytree(EXAMPLE, repo)
    (repo / "corrupt" / "1").mkdir(parents=True)
    (repo / "corrupt" / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    running = RunningServer([repo], "--exit-on-error=false")
    yield running
    running.stop()


def reference(x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(EXAMPLE / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["OUTPUT0"], {"INPUT0": x})[0]


@pytest.mark.parametrize("model", ["mlp", "mlp_autoconfig"])
def test_outputs_equal_onnxruntime(server, model):
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", [3, 16], "FP32")
    inp.set_data_from_numpy(x)
    got = client.infer(model, [inp]).as_numpy("OUTPUT0")
    np.testing.assert_allclose(got, reference(x), rtol=1e-5, atol=1e-5)


def test_config_is_completed_from_the_model(server):
    config = httpclient.InferenceServerClient(server.http).get_model_config("mlp_autoconfig")
    assert config["platform"] == "onnxruntime_onnx" and config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 4 and "dynamic_batching" in config
    assert config["input"][0]["name"] == "INPUT0" and config["input"][0]["dims"] == [16]
    assert config["output"][0]["dims"] == [4]


def test_concurrent_requests_are_batched_and_correct(server):
    rng = np.random.default_rng(2)
    rows = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(16)]

    async def go():
        client = aiogrpc.InferenceServerClient(server.grpc)
        try:
            calls = []
            for row in rows:
                inp = aiogrpc.InferInput("INPUT0", [1, 16], "FP32")
                inp.set_data_from_numpy(row)
                calls.append(client.infer("mlp", [inp]))
            return await asyncio.gather(*calls)
        finally:
            await client.close()

    before = httpclient.InferenceServerClient(server.http).get_inference_statistics("mlp")["model_stats"][0]
    results = asyncio.run(go())
    after = httpclient.InferenceServerClient(server.http).get_inference_statistics("mlp")["model_stats"][0]
    for row, result in zip(rows, results, strict=True):
        np.testing.assert_allclose(result.as_numpy("OUTPUT0"), reference(row), rtol=1e-5, atol=1e-5)
    assert after["inference_count"] - before["inference_count"] == 16
    assert after["execution_count"] - before["execution_count"] < 16  # some requests shared an execution


def test_classification_uses_the_label_file(server):
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", [2, 16], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("mlp", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=2)])
    labels = ["cat", "dog", "bird", "fish"]
    expected = reference(x)
    got = result.as_numpy("OUTPUT0")
    assert got.shape == (2, 2)
    for row, scores in zip(got, expected, strict=True):
        order = np.argsort(-scores)[:2]
        assert [v.decode() for v in row] == [f"{scores[i]:f}:{i}:{labels[i]}" for i in order]


def test_corrupt_model_is_unavailable_with_a_reason(server):
    rows = {row["name"]: row for row in httpclient.InferenceServerClient(server.http).get_model_repository_index()}
    assert rows["corrupt"]["state"] == "UNAVAILABLE" and rows["corrupt"]["reason"]
    assert rows["mlp"]["state"] == "READY" and rows["mlp_autoconfig"]["state"] == "READY"
