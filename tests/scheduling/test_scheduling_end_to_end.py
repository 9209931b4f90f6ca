"""Scheduling through a real server and the real tritonclient: batching and parallel instances."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as aiogrpc
import tritonclient.http as httpclient
from serverutil import RunningServer

REPORTER = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep = float(params.get("SLEEP_S", {}).get("string_value", "0"))

    def execute(self, requests):
        time.sleep(self.sleep)
        sizes = [r.inputs()[0].as_numpy().shape[0] for r in requests]
        widths = len({r.inputs()[0].as_numpy().shape[1:] for r in requests})
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            seen = np.full((x.shape[0], 1), len(requests), dtype=np.int32)
            total = np.full((x.shape[0], 1), sum(sizes), dtype=np.int32)
            shapes = np.full((x.shape[0], 1), widths, dtype=np.int32)
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", x), pb_utils.Tensor("REQUESTS", seen), pb_utils.Tensor("BATCH", total),
                pb_utils.Tensor("SHAPES", shapes)]))
        return out
"""


def reporter(root: Path, name: str, extra: str, sleep: float, max_batch_size: int = 8) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(REPORTER)
    (folder / "config.pbtxt").write_text(
        f'backend: "python"\nmax_batch_size: {max_batch_size}\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] },\n'
        '        { name: "REQUESTS" data_type: TYPE_INT32 dims: [ 1 ] },\n'
        '        { name: "BATCH" data_type: TYPE_INT32 dims: [ 1 ] },\n'
        '        { name: "SHAPES" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        f'parameters {{ key: "SLEEP_S" value: {{ string_value: "{sleep}" }} }}\n' + extra
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("scheduling")
    reporter(root, "batched", "dynamic_batching { max_queue_delay_microseconds: 20000 }", 0.05, 4)
    reporter(root, "one_instance", "instance_group [{ count: 1 kind: KIND_CPU }]", 0.2, 0)
    reporter(root, "two_instances", "instance_group [{ count: 2 kind: KIND_CPU }]", 0.2, 0)
    running = RunningServer([root])
    yield running
    running.stop()


async def burst(url: str, model: str, widths: list[int], batch: int = 1) -> list:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for i, width in enumerate(widths):
            data = np.full((batch, width), float(i), np.float32) if batch else np.full(width, float(i), np.float32)
            inp = aiogrpc.InferInput("INPUT0", list(data.shape), "FP32")
            inp.set_data_from_numpy(data)
            calls.append(client.infer(model, [inp], request_id=str(i)))
        return await asyncio.gather(*calls)
    finally:
        await client.close()


def test_concurrent_requests_are_batched_and_answered_separately(server):
    results = asyncio.run(burst(server.grpc, "batched", [3] * 9))
    batches = [int(r.as_numpy("BATCH")[0, 0]) for r in results]
    assert max(batches) > 1 and all(b <= 4 for b in batches)  # batched, never above max_batch_size
    for i, result in enumerate(results):  # each client gets its own data back
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 3), float(i), np.float32))


def test_different_shapes_do_not_share_a_batch(server):
    widths = [3, 3, 3, 3, 5, 5, 5, 5]  # grouped: each group can batch; the groups must never mix
    results = asyncio.run(burst(server.grpc, "batched", widths))
    for width, result in zip(widths, results, strict=True):
        assert result.as_numpy("OUTPUT0").shape == (1, width)
        assert result.as_numpy("SHAPES")[0, 0] == 1  # every execute saw a single non-batch shape
    assert max(int(r.as_numpy("REQUESTS")[0, 0]) for r in results) > 1


def test_lone_request_waits_at_most_the_queue_delay(server):
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", [1, 2], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 2), np.float32))
    client.infer("batched", [inp])  # warm
    start = time.monotonic()
    result = client.infer("batched", [inp])
    elapsed = time.monotonic() - start
    assert result.as_numpy("REQUESTS")[0, 0] == 1
    assert elapsed < 0.05 + 0.02 + 0.15  # model sleep + 20 ms delay + slack for a loaded machine


@pytest.mark.parametrize(("model", "bound"), [("one_instance", (0.75, 5.0)), ("two_instances", (0.35, 0.7))])
def test_two_instances_double_throughput(server, model, bound):
    asyncio.run(burst(server.grpc, model, [2], batch=0))  # warm
    start = time.monotonic()
    asyncio.run(burst(server.grpc, model, [2] * 4, batch=0))
    elapsed = time.monotonic() - start
    low, high = bound
    assert low <= elapsed < high, elapsed  # 4 requests x 0.2 s: ~0.8 s on one instance, ~0.4 s on two
