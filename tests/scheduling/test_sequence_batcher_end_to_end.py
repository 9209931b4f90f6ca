"""Sequences through a real server: many interleaved sequences over gRPC streaming and HTTP, exact
running sums (control-input and implicit-state accumulators), idle release and Triton's errors."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

# A control-input accumulator: one running sum per CORRID, reset by START, skipped when not READY.
CONTROLLED = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sums = {}

    def execute(self, requests):
        out = []
        for r in requests:
            get = lambda name: pb_utils.get_input_tensor_by_name(r, name).as_numpy().reshape(-1)[0]
            corrid = get("CORRID")
            corrid = corrid.decode() if isinstance(corrid, bytes) else int(corrid)
            if get("START"):
                self.sums[corrid] = 0
            if get("READY"):
                self.sums[corrid] = self.sums.get(corrid, 0) + int(get("INPUT"))
            shape = pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy().shape
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT", np.full(shape, self.sums.get(corrid, 0), np.int32))]))
        return out
"""

STATEFUL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            total = (pb_utils.get_input_tensor_by_name(r, "ACC_IN").as_numpy()
                     + pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy())
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT", total), pb_utils.Tensor("ACC_OUT", total)]))
        return out
"""

CONTROLS = """
  control_input [
    {{ name: "START" control [{{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }}] }},
    {{ name: "READY" control [{{ kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] }}] }},
    {{ name: "CORRID" control [{{ kind: CONTROL_SEQUENCE_CORRID data_type: {corrid} }}] }}
  ]
"""


def model(root: Path, name: str, config: str, code: str) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    (folder / "1" / "model.py").write_text(code)


IO = (
    'input [{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
    'output [{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sequences")
    model(
        root,
        "controlled",
        f'backend: "python"\nmax_batch_size: 4\n{IO}'
        f"sequence_batching {{ direct {{ }} {CONTROLS.format(corrid='TYPE_UINT64')} }}\n"
        "instance_group [{ count: 2 kind: KIND_CPU }]\n",
        CONTROLLED,
    )
    model(
        root,
        "controlled_oldest",
        f'backend: "python"\nmax_batch_size: 4\n{IO}'
        "sequence_batching { oldest { max_candidate_sequences: 4 max_queue_delay_microseconds: 1000 }"
        f" {CONTROLS.format(corrid='TYPE_STRING')} }}\n",
        CONTROLLED,
    )
    model(
        root,
        "stateful",
        f'backend: "python"\nmax_batch_size: 0\n{IO}'
        'sequence_batching { state [{ input_name: "ACC_IN" output_name: "ACC_OUT" data_type: TYPE_INT32 dims: [ 1 ]'
        ' initial_state { name: "zero" data_type: TYPE_INT32 dims: [ 1 ] zero_data: true } }] }\n'
        "instance_group [{ count: 2 kind: KIND_CPU }]\n",
        STATEFUL,
    )
    model(
        root,
        "short_idle",
        f'backend: "python"\nmax_batch_size: 0\n{IO}'
        "sequence_batching { max_sequence_idle_microseconds: 200000 "
        f"{CONTROLS.format(corrid='TYPE_UINT64')} }}\n",
        CONTROLLED,
    )
    running = RunningServer([root])
    yield running
    running.stop()


def values_for(corrid: int, steps: int) -> list[int]:
    return [corrid * 10 + step for step in range(steps)]


def expected_sums(corrid: int, steps: int) -> list[int]:
    return list(np.cumsum(values_for(corrid, steps)))


def test_interleaved_sequences_over_one_grpc_stream(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    steps, sequences = 5, [1, 2, 3, 4, 5, 6]
    models = {"controlled": [1, 1], "stateful": [1]}
    try:
        for step in range(steps):  # one request of every sequence, then the next round
            for corrid in sequences:
                for name, shape in models.items():
                    tensor = grpcclient.InferInput("INPUT", shape, "INT32")
                    tensor.set_data_from_numpy(np.full(shape, values_for(corrid, steps)[step], np.int32))
                    client.async_stream_infer(
                        name,
                        [tensor],
                        request_id=f"{name}/{corrid}/{step}",
                        sequence_id=corrid,
                        sequence_start=step == 0,
                        sequence_end=step == steps - 1,
                    )
        got: dict[str, int] = {}
        for _ in range(steps * len(sequences) * len(models)):
            result, error = results.get(timeout=20)
            assert error is None, error
            got[result.get_response().id] = int(result.as_numpy("OUTPUT").reshape(-1)[0])
    finally:
        client.stop_stream()
    for name in models:
        for corrid in sequences:
            sums = [got[f"{name}/{corrid}/{step}"] for step in range(steps)]
            assert sums == expected_sums(corrid, steps), (name, corrid)


def test_concurrent_sequences_over_http_with_string_ids(server):
    failures: list = []
    sums: dict[str, list[int]] = {}

    def run(corrid: int) -> None:
        client = httpclient.InferenceServerClient(server.http)
        try:
            out = []
            for step, value in enumerate(values_for(corrid, 4)):
                tensor = httpclient.InferInput("INPUT", [1, 1], "INT32")
                tensor.set_data_from_numpy(np.array([[value]], np.int32))
                result = client.infer(
                    "controlled_oldest",
                    [tensor],
                    sequence_id=f"user-{corrid}",
                    sequence_start=step == 0,
                    sequence_end=step == 3,
                )
                out.append(int(result.as_numpy("OUTPUT")[0, 0]))
            sums[f"user-{corrid}"] = out
        except Exception as exc:  # collected: a thread's assertion would otherwise be lost
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(corrid,)) for corrid in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    assert sums == {f"user-{corrid}": expected_sums(corrid, 4) for corrid in range(1, 7)}


def post(server, model: str, parameters: dict, shape=(1,)) -> requests.Response:
    body = {
        "inputs": [{"name": "INPUT", "datatype": "INT32", "shape": list(shape), "data": [1] * int(np.prod(shape))}],
        "parameters": parameters,
    }
    return requests.post(f"http://{server.http}/v2/models/{model}/infer", json=body, timeout=10)


def test_tritons_errors_over_http_and_grpc(server):
    no_id = post(server, "stateful", {})
    assert (no_id.status_code, no_id.json()["error"]) == (
        400,
        "inference request to model 'stateful' must specify a non-zero or non-empty correlation ID",
    )
    unknown = post(server, "stateful", {"sequence_id": 4242})
    assert unknown.json()["error"] == (
        "inference request for sequence 4242 to model 'stateful' must specify the START flag on the first request "
        "of the sequence"
    )
    batch = post(server, "controlled", {"sequence_id": 9, "sequence_start": True}, shape=(2, 1))
    assert batch.json()["error"] == (
        "inference request to model 'controlled' must specify batch-size 1 due to requirements of sequence batcher"
    )
    client = grpcclient.InferenceServerClient(server.grpc)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        tensor = grpcclient.InferInput("INPUT", [1], "INT32")
        tensor.set_data_from_numpy(np.ones(1, np.int32))
        client.async_stream_infer("stateful", [tensor], sequence_id="nobody")
        result, error = results.get(timeout=10)
        assert result is None and error.message() == (
            "inference request for sequence nobody to model 'stateful' must specify the START flag on the first "
            "request of the sequence"
        )
    finally:
        client.stop_stream()


def test_an_idle_sequence_is_released(server):
    started = post(server, "short_idle", {"sequence_id": 77, "sequence_start": True})
    assert started.status_code == 200 and started.json()["outputs"][0]["data"] == [1]
    time.sleep(0.6)  # idle limit 0.2 s
    late = post(server, "short_idle", {"sequence_id": 77})
    assert (late.status_code, late.json()["error"]) == (
        400,
        "inference request for sequence 77 to model 'short_idle' must specify the START flag on the first request "
        "of the sequence",
    )
    again = post(server, "short_idle", {"sequence_id": 77, "sequence_start": True, "sequence_end": True})
    assert again.json()["outputs"][0]["data"] == [1]


def test_sequence_model_config_has_tritons_defaults(server):
    client = httpclient.InferenceServerClient(server.http)
    config = client.get_model_config("stateful")["sequence_batching"]
    assert config["max_sequence_idle_microseconds"] == 1000000
    assert "sequence" in client.get_server_metadata()["extensions"]
    with pytest.raises(InferenceServerException, match="must specify a non-zero or non-empty correlation ID"):
        tensor = httpclient.InferInput("INPUT", [1], "INT32")
        tensor.set_data_from_numpy(np.ones(1, np.int32))
        client.infer("stateful", [tensor])
