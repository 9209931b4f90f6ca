"""The rate limiter and model warmup through a real server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as aiogrpc
import tritonclient.http as httpclient
from serverutil import RunningServer

SLEEPER = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.warmups = 0

    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if x.size and float(x.reshape(-1)[0]) == 42.0:
                raise RuntimeError("warmup data rejected")
            if x.size and float(x.reshape(-1)[0]) == -1.0:
                self.warmups += 1
            else:
                time.sleep(0.2)
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", x), pb_utils.Tensor("WARMUPS", np.array([self.warmups], np.int32))]))
        return out
"""


def sleeper(root: Path, name: str, extra: str = "") -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(SLEEPER)
    (folder / "config.pbtxt").write_text(
        'backend: "python"\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }, '
        '{ name: "WARMUPS" data_type: TYPE_INT32 dims: [ 1 ] }]\n' + extra
    )


SHARED_R = 'instance_group [{ count: 1 kind: KIND_CPU rate_limiter { resources [{ name: "R" count: 1 }] } }]\n'


async def both(url: str) -> float:
    client = aiogrpc.InferenceServerClient(url)
    try:
        calls = []
        for model in ("a", "b"):
            inp = aiogrpc.InferInput("INPUT0", [1], "FP32")
            inp.set_data_from_numpy(np.ones(1, np.float32))
            calls.append(client.infer(model, [inp]))
        await asyncio.gather(*calls)  # warm both
        start = time.monotonic()
        await asyncio.gather(*[client.infer(m, [inp]) for m in ("a", "b")])
        return time.monotonic() - start
    finally:
        await client.close()


@pytest.mark.parametrize(("flags", "serial"), [((), False), (("--rate-limit=execution_count",), True)])
def test_a_shared_resource_serializes_two_models(tmp_path, flags, serial):
    sleeper(tmp_path, "a", SHARED_R)
    sleeper(tmp_path, "b", SHARED_R)
    server = RunningServer([tmp_path], *flags)
    try:
        elapsed = asyncio.run(both(server.grpc))
    finally:
        server.stop()
    if serial:
        assert elapsed >= 0.38, elapsed  # one R: the two 0.2 s executions cannot overlap
    else:
        assert elapsed < 0.38, elapsed


def test_resource_above_what_the_flags_allow_makes_the_model_unavailable(tmp_path):
    sleeper(tmp_path, "greedy", SHARED_R.replace("count: 1 }]", "count: 4 }]"))
    server = RunningServer(
        [tmp_path], "--rate-limit=execution_count", "--rate-limit-resource=R:3", "--exit-on-error=false"
    )
    try:
        (row,) = httpclient.InferenceServerClient(server.http).get_model_repository_index()
    finally:
        server.stop()
    assert row["state"] == "UNAVAILABLE"
    assert row["reason"] == (
        'Invalid argument: Resource count for "R" is limited to 3 which will prevent scheduling of one or more '
        "model instances, the minimum required count is 4"
    )


WARMUP = """
model_warmup [{{
  name: "{name}" batch_size: 1 count: 3
  inputs {{ key: "INPUT0" value: {{ data_type: TYPE_FP32 dims: [ 1 ] input_data_file: "{file}" }} }}
}}]
"""


def test_warmup_runs_before_ready_and_a_failing_one_makes_the_model_unavailable(tmp_path):
    sleeper(tmp_path, "warm", WARMUP.format(name="minus one", file="minus_one"))
    sleeper(tmp_path, "cold", WARMUP.format(name="forty two", file="forty_two"))
    for model, value in (("warm", -1.0), ("cold", 42.0)):
        (tmp_path / model / "warmup").mkdir()
        (tmp_path / model / "warmup" / ("minus_one" if value < 0 else "forty_two")).write_bytes(
            np.array([value], np.float32).tobytes()
        )
    server = RunningServer([tmp_path], "--exit-on-error=false")
    try:
        client = httpclient.InferenceServerClient(server.http)
        rows = {row["name"]: row for row in client.get_model_repository_index()}
        inp = httpclient.InferInput("INPUT0", [1], "FP32")
        inp.set_data_from_numpy(np.zeros(1, np.float32))
        warmups = client.infer("warm", [inp]).as_numpy("WARMUPS")
    finally:
        server.stop()
    assert rows["warm"]["state"] == "READY" and warmups.tolist() == [3]
    assert rows["cold"]["state"] == "UNAVAILABLE"
    assert rows["cold"]["reason"].startswith(
        "Invalid argument: failed to run warmup sample 'forty two': Failed to process the request(s) for model "
        "'cold_0', message: RuntimeError: warmup data rejected"
    )
