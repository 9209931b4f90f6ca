"""A TorchScript model through a real server and tritonclient, with dynamic batching (skips without torch)."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import requests

torch = pytest.importorskip("torch")

import tritonclient.grpc.aio as aiogrpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from serverutil import RunningServer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KIND = os.environ.get("TRITONLITE_TEST_DEVICE", "CPU")
if KIND == "GPU" and not torch.cuda.is_available():
    pytest.skip("TRITONLITE_TEST_DEVICE=GPU but torch sees no GPU", allow_module_level=True)


class Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10)

    def forward(self, x):
        return x @ self.weight, x.sum(dim=1, keepdim=True)


CONFIG = f"""
platform: "pytorch_libtorch"
max_batch_size: 8
input [{{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }}]
output [{{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] }},
        {{ name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 1 ] }}]
dynamic_batching {{ max_queue_delay_microseconds: 200000 }}
instance_group [{{ kind: KIND_{KIND} }}]
"""


@pytest.fixture(scope="module")
def torch_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_repository")
    folder = root / "affine"
    (folder / "1").mkdir(parents=True)
    module = torch.jit.script(Affine())
    torch.jit.save(module, str(folder / "1" / "model.pt"))
    (folder / "config.pbtxt").write_text(CONFIG)
    running = RunningServer([root])
    yield running, module
    running.stop()


async def _burst(url: str, rows: list[np.ndarray]) -> list:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for i, row in enumerate(rows):
            inp = aiogrpc.InferInput("INPUT__0", list(row.shape), "FP32")
            inp.set_data_from_numpy(row)
            calls.append(client.infer("affine", [inp], request_id=str(i)))
        return await asyncio.gather(*calls)
    finally:
        await client.close()


def test_concurrent_requests_are_batched_and_match_the_module(torch_server):
    server, module = torch_server
    rng = np.random.default_rng(3)
    rows = [rng.standard_normal((1 + i % 2, 4)).astype(np.float32) for i in range(6)]
    results = asyncio.run(_burst(server.grpc, rows))
    with torch.no_grad():
        for row, result in zip(rows, results, strict=True):
            expected = module(torch.from_numpy(row))
            np.testing.assert_allclose(result.as_numpy("OUTPUT__0"), expected[0].numpy(), rtol=1e-5)
            np.testing.assert_allclose(result.as_numpy("OUTPUT__1"), expected[1].numpy(), rtol=1e-5)
    stats = requests.get(f"http://{server.http}/v2/models/affine/stats", timeout=10).json()["model_stats"][0]
    assert stats["inference_count"] == sum(r.shape[0] for r in rows)
    assert stats["execution_count"] < len(rows)


def test_requested_output_over_http(torch_server):
    server, _ = torch_server
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT__0", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), np.float32))
    result = client.infer("affine", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT__1")])
    assert result.as_numpy("OUTPUT__0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), [[4.0]])
