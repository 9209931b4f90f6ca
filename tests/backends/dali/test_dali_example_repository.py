"""examples/dali_resnet_repository end to end: the DALI -> CNN ensemble equals running the pipeline
and the TorchScript CNN directly; the example client classifies with class_count. Skips without
DALI or torch."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from conftest import ROOT  # noqa: E402
from dali_pipelines import EXAMPLE, preprocess_bytes  # noqa: E402
from nvidia.dali.pipeline import Pipeline  # noqa: E402
from serverutil import RunningServer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def jpeg(height: int, width: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


IMAGES = [jpeg(200, 300, 11), jpeg(100, 80, 12), jpeg(256, 256, 13)]


def padded(images: list[bytes]) -> np.ndarray:
    batch = np.zeros((len(images), max(map(len, images))), np.uint8)
    for row, image in enumerate(images):
        batch[row, : len(image)] = np.frombuffer(image, np.uint8)
    return batch


def direct(images: list[bytes]) -> np.ndarray:
    """DALI's pipeline, then the CNN, each run by its own framework."""
    pipeline = Pipeline.deserialize(serialized_pipeline=preprocess_bytes(), device_id=None, max_batch_size=8)
    pipeline.build()
    pipeline.feed_input("DALI_INPUT_0", [np.frombuffer(image, np.uint8) for image in images])
    (out,) = pipeline.run()
    preprocessed = np.stack([np.array(out[i]) for i in range(len(out))])
    module = torch.jit.load(str(EXAMPLE / "resnet50_pytorch" / "1" / "model.pt"))
    with torch.no_grad():
        return module(torch.from_numpy(preprocessed)).numpy()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("dali_example") / "repo"
    shutil.copytree(EXAMPLE, repo)
    running = RunningServer([repo])
    yield running
    running.stop()


def test_http_ensemble_equals_pipeline_then_cnn(server):
    client = httpclient.InferenceServerClient(server.http)
    batch = padded(IMAGES)
    inputs = [httpclient.InferInput("ENSEMBLE_INPUT_0", list(batch.shape), "UINT8")]
    inputs[0].set_data_from_numpy(batch, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("ENSEMBLE_OUTPUT_0", binary_data=True)]
    result = client.infer("resnet50_ensemble", inputs, outputs=outputs)
    logits = result.as_numpy("ENSEMBLE_OUTPUT_0")
    assert logits.shape == (3, 1000)
    np.testing.assert_allclose(logits, direct(IMAGES), rtol=1e-4, atol=1e-5)


def test_grpc_class_count_gives_the_top_classes(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    batch = padded(IMAGES[:2])
    inputs = [grpcclient.InferInput("ENSEMBLE_INPUT_0", list(batch.shape), "UINT8")]
    inputs[0].set_data_from_numpy(batch)
    outputs = [grpcclient.InferRequestedOutput("ENSEMBLE_OUTPUT_0", class_count=3)]
    result = client.infer("resnet50_ensemble", inputs, outputs=outputs)
    expected = direct(IMAGES[:2])
    for row, classes in enumerate(result.as_numpy("ENSEMBLE_OUTPUT_0")):
        indexes = [int(entry.decode().split(":")[1]) for entry in classes]
        assert indexes == list(np.argsort(-expected[row])[:3])


def test_the_example_client_runs(server, tmp_path):
    paths = []
    for index, image in enumerate(IMAGES[:2]):
        path = tmp_path / f"image{index}.jpg"
        path.write_bytes(image)
        paths.append(str(path))
    script = ROOT / "examples" / "dali_resnet_client.py"
    out = subprocess.run(
        [sys.executable, str(script), "-u", server.http, *paths], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["image0.jpg", "image1.jpg"]
    top = int(np.argmax(direct(IMAGES[:1])[0]))
    assert f":{top}'" in lines[0]
