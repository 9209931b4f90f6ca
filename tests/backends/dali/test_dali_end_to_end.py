"""DALI models through a real server and tritonclient (HTTP and gRPC), against the pipeline run by
DALI directly: batched and unbatched, ragged batches, encoded images as BYTES, auto-complete, a bad
image, and a GPU pipeline refused on the CPU. Skips without DALI."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import requests

pytest.importorskip("nvidia.dali")
Image = pytest.importorskip("PIL.Image")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.grpc.aio as aiogrpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from dali_pipelines import preprocess_bytes, with_declared_output, with_device, write_model  # noqa: E402
from nvidia.dali.pipeline import Pipeline  # noqa: E402
from serverutil import RunningServer  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OUTPUT = 'output [{ name: "DALI_OUTPUT_0" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }]'
CONFIGS = {
    "pre": f"""backend: "dali"
max_batch_size: 8
input [{{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ -1 ] allow_ragged_batch: true }}]
{OUTPUT}
dynamic_batching {{ max_queue_delay_microseconds: 300000 }}
instance_group [{{ kind: KIND_CPU }}]
""",
    "pre_bytes": f"""backend: "dali"
max_batch_size: 8
input [{{ name: "DALI_INPUT_0" data_type: TYPE_STRING dims: [ 1 ] }}]
{OUTPUT}
""",
    "pre_single": f"""backend: "dali"
max_batch_size: 0
input [{{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ -1 ] }}]
{OUTPUT}
""",
    "pre_auto": 'backend: "dali"\n',
    "pre_gpu": f"""backend: "dali"
max_batch_size: 8
input [{{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ -1 ] }}]
{OUTPUT}
instance_group [{{ kind: KIND_CPU }}]
""",
}


def jpeg(height: int, width: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


IMAGES = [jpeg(120, 90, 1), jpeg(240, 320, 2), jpeg(64, 64, 3), jpeg(300, 200, 4)]


def direct(images: list[bytes]) -> np.ndarray:
    """The pipeline run by DALI itself."""
    pipeline = Pipeline.deserialize(serialized_pipeline=preprocess_bytes(), device_id=None, max_batch_size=8)
    pipeline.build()
    pipeline.feed_input("DALI_INPUT_0", [np.frombuffer(image, np.uint8) for image in images])
    (out,) = pipeline.run()
    return np.stack([np.array(out[i]) for i in range(len(out))])


def padded(images: list[bytes]) -> np.ndarray:
    batch = np.zeros((len(images), max(map(len, images))), np.uint8)
    for row, image in enumerate(images):
        batch[row, : len(image)] = np.frombuffer(image, np.uint8)
    return batch


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("dali_repository")
    for name, config in CONFIGS.items():
        serialized = preprocess_bytes()
        if name == "pre_auto":
            serialized = with_declared_output(serialized, dtype=9, ndim=3)
        elif name == "pre_gpu":
            serialized = with_device(serialized, "decoders__Image", "mixed")
        write_model(root, name, config, serialized)
    running = RunningServer([root], "--exit-on-error=false")
    yield running
    running.stop()


def test_http_batch_equals_dali(server):
    client = httpclient.InferenceServerClient(server.http)
    batch = padded(IMAGES[:3])
    inputs = [httpclient.InferInput("DALI_INPUT_0", list(batch.shape), "UINT8")]
    inputs[0].set_data_from_numpy(batch, binary_data=True)
    result = client.infer("pre", inputs)
    np.testing.assert_allclose(result.as_numpy("DALI_OUTPUT_0"), direct(IMAGES[:3]), rtol=1e-6)


def test_grpc_unbatched_model_equals_dali(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    image = np.frombuffer(IMAGES[1], np.uint8)
    inputs = [grpcclient.InferInput("DALI_INPUT_0", [len(image)], "UINT8")]
    inputs[0].set_data_from_numpy(image)
    result = client.infer("pre_single", inputs)
    output = result.as_numpy("DALI_OUTPUT_0")
    assert output.shape == (3, 224, 224)
    np.testing.assert_allclose(output, direct([IMAGES[1]])[0], rtol=1e-6)


def test_bytes_input_takes_images_of_different_sizes_in_one_request(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    batch = np.array([[image] for image in IMAGES], dtype=object)
    inputs = [grpcclient.InferInput("DALI_INPUT_0", list(batch.shape), "BYTES")]
    inputs[0].set_data_from_numpy(batch)
    result = client.infer("pre_bytes", inputs)
    np.testing.assert_allclose(result.as_numpy("DALI_OUTPUT_0"), direct(IMAGES), rtol=1e-6)


async def _burst(url: str, images: list[bytes]) -> list:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for index, image in enumerate(images):
            array = np.frombuffer(image, np.uint8)[None, :]
            inp = aiogrpc.InferInput("DALI_INPUT_0", list(array.shape), "UINT8")
            inp.set_data_from_numpy(array)
            calls.append(client.infer("pre", [inp], request_id=str(index)))
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await client.close()


def _counts(server) -> tuple[int, int]:
    stats = requests.get(f"http://{server.http}/v2/models/pre/stats", timeout=10).json()["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]


def test_ragged_requests_are_batched_and_each_equals_dali(server):
    before = _counts(server)
    results = asyncio.run(_burst(server.grpc, IMAGES))
    after = _counts(server)
    for image, result in zip(IMAGES, results, strict=True):
        np.testing.assert_allclose(result.as_numpy("DALI_OUTPUT_0"), direct([image]), rtol=1e-6)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == len(IMAGES) and executions < inferences  # images of different sizes ran together


def test_a_bad_image_fails_only_its_request(server):
    images = [IMAGES[0], b"\xff\xd8 this is not a jpeg", IMAGES[2]]
    results = asyncio.run(_burst(server.grpc, images))
    assert isinstance(results[1], InferenceServerException)
    assert "DALI error" in results[1].message()
    for index in (0, 2):
        np.testing.assert_allclose(results[index].as_numpy("DALI_OUTPUT_0"), direct([images[index]]), rtol=1e-6)
    # the pipeline still works afterwards
    np.testing.assert_allclose(
        asyncio.run(_burst(server.grpc, IMAGES[3:]))[0].as_numpy("DALI_OUTPUT_0"), direct(IMAGES[3:]), rtol=1e-6
    )


def test_auto_complete_from_the_pipeline(server):
    config = httpclient.InferenceServerClient(server.http).get_model_config("pre_auto")
    assert config["max_batch_size"] == 32
    assert config["input"][0]["name"] == "DALI_INPUT_0" and config["input"][0]["allow_ragged_batch"]
    assert config["input"][0]["data_type"] == "TYPE_UINT8" and config["input"][0]["dims"] == [-1]
    assert config["output"][0]["name"] == "DALI_OUTPUT_0" and config["output"][0]["data_type"] == "TYPE_FP32"
    assert config["output"][0]["dims"] == [-1, -1, -1]


def test_a_gpu_pipeline_on_a_cpu_instance_fails_to_load_naming_the_operator(server):
    index = requests.post(f"http://{server.http}/v2/repository/index", json={}, timeout=10).json()
    (entry,) = [model for model in index if model["name"] == "pre_gpu"]
    assert entry["state"] == "UNAVAILABLE"
    assert (
        "DALI operator 'nvidia.dali.fn.decoders.image' (instance '__Image_0') runs on device 'mixed'"
        in (entry["reason"])
    )
