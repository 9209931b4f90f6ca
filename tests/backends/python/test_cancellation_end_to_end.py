"""Cancellation end to end: a gRPC call whose deadline passes, an HTTP client that disconnects and a
closed gRPC stream withdraw their request. A queued one never runs; a running python model sees
``is_cancelled()`` (thread and process mode, request and response sender); the request counts once
as ``nv_inference_request_failure{reason="CANCELED"}``; the instance is free again afterwards.

The models write what they saw to a marker file and count what they saw in a custom metric.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from serverutil import RunningServer

SLOW = """
import json, os, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_name"]
        family = pb_utils.MetricFamily(
            name="test_cancelled_seen_total", description="cancellations a model saw",
            kind=pb_utils.MetricFamily.COUNTER)
        self.seen = family.Metric(labels={"model": self.name})

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            end = time.monotonic() + float(x.reshape(-1)[0])
            cancelled = False
            while time.monotonic() < end:
                if r.is_cancelled():
                    cancelled = True
                    break
                time.sleep(0.005)
            with open(os.environ["TL_MARKER"], "a") as marker:
                marker.write(json.dumps([self.name, r.request_id(), cancelled]) + "\\n")
            if cancelled:
                self.seen.increment(1)
                out.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("cancelled", pb_utils.TritonError.CANCELLED)))
            else:
                out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return out
"""

STREAM = """
import json, os, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            sender = r.get_response_sender()
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            seen = None
            for i in range(500):
                if sender.is_cancelled():
                    seen = [i, sender.is_cancelled(), r.is_cancelled()]
                    break
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
                time.sleep(0.01)
            after = "accepted"
            try:  # as Triton: sends after the cancellation are accepted (and dropped)
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            except Exception as exc:
                after = str(exc)
            with open(os.environ["TL_MARKER"], "a") as marker:
                marker.write(json.dumps(["stream", r.request_id(), seen, after]) + "\\n")
        return None
"""

IO = (
    'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    "instance_group [{ count: 1 kind: KIND_CPU }]\n"
)
NEVER_INLINE = 'parameters { key: "TRITONLITE_EXECUTE_INLINE" value: { string_value: "never" } }\n'
PROCESS = 'parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "process" } }\n'

MODELS = {
    "direct": (SLOW, 'backend: "python"\nmax_batch_size: 0\n' + IO + NEVER_INLINE),
    "batched": (SLOW, 'backend: "python"\nmax_batch_size: 1\ndynamic_batching { }\n' + IO + NEVER_INLINE),
    "process": (SLOW, 'backend: "python"\nmax_batch_size: 0\n' + IO + PROCESS),
    "stream": (STREAM, 'backend: "python"\nmax_batch_size: 0\nmodel_transaction_policy { decoupled: true }\n' + IO),
}


ENSEMBLE = (
    'platform: "ensemble"\nmax_batch_size: 0\n'
    'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    'ensemble_scheduling { step [{ model_name: "direct" model_version: -1 '
    'input_map { key: "INPUT0" value: "INPUT0" } output_map { key: "OUTPUT0" value: "OUTPUT0" } }] }\n'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("cancellation")
    for name, (code, config) in MODELS.items():
        (root / "repo" / name / "1").mkdir(parents=True)
        (root / "repo" / name / "1" / "model.py").write_text(code)
        (root / "repo" / name / "config.pbtxt").write_text(config)
    (root / "repo" / "ensemble" / "1").mkdir(parents=True)
    (root / "repo" / "ensemble" / "config.pbtxt").write_text(ENSEMBLE)
    marker = root / "marker.log"
    marker.touch()
    os.environ["TL_MARKER"] = str(marker)  # the server inherits it
    try:
        running = RunningServer([root / "repo"])
    finally:
        del os.environ["TL_MARKER"]
    running.marker = marker
    yield running
    running.stop()
    log = running.log()
    assert "Task was destroyed" not in log and "Traceback" not in log, log  # nothing left behind or crashed


def markers(server) -> list:
    return [json.loads(line) for line in Path(server.marker).read_text().splitlines()]


def seen_by(server, model: str) -> dict[str, object]:
    return {row[1]: row[2] for row in markers(server) if row[0] == model}


def metric(server, name: str, **labels: str) -> float:
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def canceled(server, model: str) -> float:
    return metric(server, "nv_inference_request_failure", model=model, reason="CANCELED", version="1")


def grpc_input(seconds: float, batched: bool = False) -> grpcclient.InferInput:
    shape = [1, 1] if batched else [1]
    tensor = grpcclient.InferInput("INPUT0", shape, "FP32")
    tensor.set_data_from_numpy(np.full(shape, seconds, np.float32))
    return tensor


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def settled(server, model: str) -> None:
    """No request of ``model`` left in the server (pending count 0) and its instance answers again."""
    wait_for(lambda: metric(server, "nv_inference_pending_request_count", model=model, version="1") == 0)


@pytest.mark.parametrize("model", ["direct", "batched"])
def test_grpc_deadline_cancels_running_and_queued_requests(server, model):
    batched = model == "batched"
    client = grpcclient.InferenceServerClient(server.grpc)
    before = canceled(server, model)
    errors: dict[str, str] = {}

    def done(rid):
        return lambda result, error: errors.__setitem__(rid, str(error))

    client.async_infer(model, [grpc_input(5.0, batched)], done("running"), request_id="running", client_timeout=0.6)
    time.sleep(0.2)  # it runs; the next one waits behind it
    client.async_infer(model, [grpc_input(0.0, batched)], done("queued"), request_id="queued", client_timeout=0.2)
    wait_for(lambda: "running" in seen_by(server, model))
    wait_for(lambda: len(errors) == 2)
    assert "Deadline" in errors["running"] and "Deadline" in errors["queued"]
    assert seen_by(server, model) == {"running": True}  # the queued one never ran
    wait_for(lambda: canceled(server, model) == before + 2)
    settled(server, model)
    result = client.infer(model, [grpc_input(0.0, batched)], request_id="after")
    assert result.as_numpy("OUTPUT0").reshape(-1).tolist() == [0.0]
    assert seen_by(server, model)["after"] is False
    assert canceled(server, model) == before + 2  # counted once each
    assert metric(server, "test_cancelled_seen_total", model=model) >= 1
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]["inference_stats"]
    assert int(stats["fail"]["count"]) >= 2


def test_process_mode_model_sees_the_cancellation(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    before = canceled(server, "process")
    with pytest.raises(Exception, match="Deadline"):
        client.infer("process", [grpc_input(5.0)], request_id="running", client_timeout=0.6)
    wait_for(lambda: "running" in seen_by(server, "process"))
    assert seen_by(server, "process")["running"] is True
    wait_for(lambda: canceled(server, "process") == before + 1)
    result = client.infer("process", [grpc_input(0.0)], request_id="after")
    assert result.as_numpy("OUTPUT0").tolist() == [0.0]
    assert seen_by(server, "process")["after"] is False
    wait_for(lambda: metric(server, "test_cancelled_seen_total", model="process") >= 1)  # relayed from the stub


def http_request_then_hang_up(server, model: str, rid: str, seconds: float, after: float) -> None:
    body = json.dumps(
        {"id": rid, "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [seconds]}]}
    ).encode()
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        time.sleep(after)


def test_http_disconnect_cancels_a_running_request(server):
    before = canceled(server, "direct")
    http_request_then_hang_up(server, "direct", "hung-up", 5.0, after=0.5)
    wait_for(lambda: "hung-up" in seen_by(server, "direct"))
    assert seen_by(server, "direct")["hung-up"] is True
    wait_for(lambda: canceled(server, "direct") == before + 1)
    settled(server, "direct")


def test_closed_grpc_stream_cancels_a_decoupled_request(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    before = canceled(server, "stream")
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    client.async_stream_infer("stream", [grpc_input(1.0)], request_id="streaming")
    for _ in range(3):
        result, error = got.get(timeout=10)
        assert error is None
    client.stop_stream(cancel_requests=True)
    wait_for(lambda: any(row[0] == "stream" for row in markers(server)))
    row = next(row for row in markers(server) if row[0] == "stream")
    steps, sender_saw, request_saw = row[2]
    assert steps < 500 and sender_saw is True and request_saw is True
    assert row[3] == "accepted"
    wait_for(lambda: canceled(server, "stream") == before + 1)
    settled(server, "stream")
    assert metric(server, "nv_inference_request_success", model="stream", version="1") == 0


def test_closed_grpc_stream_cancels_a_running_plain_request(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    before = canceled(server, "direct")
    client.start_stream(callback=lambda result, error: None)
    client.async_stream_infer("direct", [grpc_input(5.0)], request_id="in-stream")
    wait_for(lambda: metric(server, "nv_inference_pending_request_count", model="direct", version="1") == 1)
    time.sleep(0.2)
    client.stop_stream(cancel_requests=True)
    wait_for(lambda: "in-stream" in seen_by(server, "direct"))
    assert seen_by(server, "direct")["in-stream"] is True
    wait_for(lambda: canceled(server, "direct") == before + 1)
    settled(server, "direct")


def test_sse_client_gone_cancels_a_decoupled_request(server):
    before = canceled(server, "stream")
    body = json.dumps({"id": "sse", "INPUT0": [1.0]}).encode()
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v2/models/stream/generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(65536)
    wait_for(lambda: any(row[0] == "stream" and row[1] == "sse" for row in markers(server)))
    row = next(row for row in markers(server) if row[0] == "stream" and row[1] == "sse")
    assert row[2][1] is True  # the sender saw the cancellation, long before its 500 responses
    wait_for(lambda: canceled(server, "stream") == before + 1)
    settled(server, "stream")


def test_grpc_deadline_cancels_an_ensemble_step(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    before = canceled(server, "ensemble"), canceled(server, "direct")
    with pytest.raises(Exception, match="Deadline"):
        client.infer("ensemble", [grpc_input(5.0)], request_id="through-ensemble", client_timeout=0.5)
    wait_for(lambda: "through-ensemble" in seen_by(server, "direct"))
    assert seen_by(server, "direct")["through-ensemble"] is True
    wait_for(lambda: (canceled(server, "ensemble"), canceled(server, "direct")) == (before[0] + 1, before[1] + 1))
    settled(server, "direct")
