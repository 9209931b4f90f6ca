"""TensorFlow SavedModels through a real server and tritonclient (HTTP and gRPC), against the
SavedModel called directly: dynamic batching, a fixed-shape (unbatched) signature, strings,
auto-complete without a config, load errors. Skips without TensorFlow."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import requests

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.grpc.aio as aiogrpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from serverutil import RunningServer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Batching(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), (4, 3)) / 10)

    @tf.function(
        input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"), tf.TensorSpec([None, 1], tf.string, name="s")]
    )
    def serve(self, x, s):
        return {"y": tf.matmul(x, self.weight), "length": tf.strings.length(s), "upper": tf.strings.upper(s)}


class Fixed(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.int32, name="a")])
    def serve(self, a):
        return {"total": tf.reduce_sum(a, axis=1), "twice": a * 2}


BATCHING_CONFIG = """
platform: "tensorflow_savedmodel"
max_batch_size: 8
input [{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "s" data_type: TYPE_STRING dims: [ 1 ] }]
output [
  { name: "y" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "length" data_type: TYPE_INT32 dims: [ 1 ] },
  { name: "upper" data_type: TYPE_STRING dims: [ 1 ] }
]
dynamic_batching { max_queue_delay_microseconds: 300000 }
instance_group [{ kind: KIND_CPU }]
parameters { key: "TF_NUM_INTRA_THREADS" value: { string_value: "1" } }
"""

WRONG_CONFIG = BATCHING_CONFIG.replace('name: "x" data_type: TYPE_FP32', 'name: "x" data_type: TYPE_FP64')
GPU_CONFIG = BATCHING_CONFIG.replace("KIND_CPU", "KIND_GPU")


def save(module: tf.Module, path) -> None:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf_repository")
    saved = {"batching": Batching(), "fixed": Fixed()}
    layout = {
        "batching": ("batching", BATCHING_CONFIG),
        "batching_auto": ("batching", None),  # no config.pbtxt: detected from its model.savedmodel folder
        "fixed_auto": ("fixed", None),
        "wrong_type": ("batching", WRONG_CONFIG),
        "on_gpu": ("batching", GPU_CONFIG),
    }
    for name, (module, config) in layout.items():
        (root / name / "1").mkdir(parents=True)
        save(saved[module], root / name / "1" / "model.savedmodel")
        if config:
            (root / name / "config.pbtxt").write_text(config)
    direct = {
        name: tf.saved_model.load(str(root / name / "1" / "model.savedmodel")) for name in ("batching", "fixed_auto")
    }
    return root, direct


@pytest.fixture(scope="module")
def server(models):
    root, _ = models
    running = RunningServer([root], "--exit-on-error=false")
    yield running
    running.stop()


def call(direct, **inputs) -> dict[str, np.ndarray]:
    results = direct.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in results.items()}


X = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
S = np.array([[b"ab"], [b"tensor"], [b""]], dtype=object)


@pytest.mark.parametrize("model", ["batching", "batching_auto"])
def test_http_equals_the_saved_model(server, models, model):
    client = httpclient.InferenceServerClient(server.http)
    inputs = [httpclient.InferInput("x", [3, 4], "FP32"), httpclient.InferInput("s", [3, 1], "BYTES")]
    inputs[0].set_data_from_numpy(X, binary_data=True)
    inputs[1].set_data_from_numpy(S, binary_data=False)
    result = client.infer(model, inputs)
    expected = call(models[1]["batching"], x=X, s=S)
    np.testing.assert_allclose(result.as_numpy("y"), expected["y"], rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("length"), expected["length"])
    assert result.as_numpy("upper").tolist() == expected["upper"].tolist()


def test_grpc_unbatched_signature_equals_the_saved_model(server, models):
    client = grpcclient.InferenceServerClient(server.grpc)
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    inputs = [grpcclient.InferInput("a", [2, 3], "INT32")]
    inputs[0].set_data_from_numpy(a)
    result = client.infer("fixed_auto", inputs)
    expected = call(models[1]["fixed_auto"], a=a)
    np.testing.assert_array_equal(result.as_numpy("total"), expected["total"])
    np.testing.assert_array_equal(result.as_numpy("twice"), expected["twice"])


async def _burst(url: str, rows: list[np.ndarray]) -> list:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for index, row in enumerate(rows):
            x = aiogrpc.InferInput("x", list(row.shape), "FP32")
            x.set_data_from_numpy(row)
            s = aiogrpc.InferInput("s", [row.shape[0], 1], "BYTES")
            s.set_data_from_numpy(np.array([[b"r%d" % index]] * row.shape[0], dtype=object))
            calls.append(client.infer("batching", [x, s], request_id=str(index)))
        return await asyncio.gather(*calls)
    finally:
        await client.close()


def test_concurrent_requests_are_batched_and_each_equals_the_saved_model(server, models):
    stats_url = f"http://{server.http}/v2/models/batching/stats"
    before = requests.get(stats_url, timeout=10).json()["model_stats"][0]
    rng = np.random.default_rng(5)
    rows = [rng.standard_normal((1 + i % 2, 4)).astype(np.float32) for i in range(6)]
    results = asyncio.run(_burst(server.grpc, rows))
    after = requests.get(stats_url, timeout=10).json()["model_stats"][0]
    for index, (row, result) in enumerate(zip(rows, results, strict=True)):
        strings = np.array([[b"r%d" % index]] * row.shape[0], dtype=object)
        expected = call(models[1]["batching"], x=row, s=strings)
        np.testing.assert_allclose(result.as_numpy("y"), expected["y"], rtol=1e-5)
        assert result.as_numpy("upper").tolist() == expected["upper"].tolist()
    assert after["inference_count"] - before["inference_count"] == sum(len(row) for row in rows)
    assert after["execution_count"] - before["execution_count"] < len(rows)


def test_auto_complete_detects_batching(server):
    client = httpclient.InferenceServerClient(server.http)
    config = client.get_model_config("batching_auto")
    assert config["backend"] == "tensorflow" and config["platform"] == "tensorflow_savedmodel"
    assert config["max_batch_size"] == 4 and "dynamic_batching" in config
    assert {(t["name"], t["data_type"], tuple(t["dims"])) for t in config["input"]} == {
        ("x", "TYPE_FP32", (4,)),
        ("s", "TYPE_STRING", (1,)),
    }
    fixed = client.get_model_config("fixed_auto")
    assert fixed["max_batch_size"] == 0
    assert [(t["name"], tuple(t["dims"])) for t in fixed["input"]] == [("a", (2, 3))]


def test_load_errors_say_why(server):
    index = {
        m["name"]: m for m in requests.post(f"http://{server.http}/v2/repository/index", json={}, timeout=10).json()
    }
    assert index["wrong_type"]["state"] == "UNAVAILABLE"
    assert (
        "unable to load model 'wrong_type', configuration expects datatype TYPE_FP64 for input 'x', model provides "
        "TYPE_FP32" in index["wrong_type"]["reason"]
    )
    assert index["on_gpu"]["state"] == "UNAVAILABLE"
    assert "KIND_GPU" in index["on_gpu"]["reason"]
