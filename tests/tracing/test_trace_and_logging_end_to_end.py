"""Trace files and the trace/logging extensions through a real server, HTTP and gRPC."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

HTTP_POINTS = [
    "HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END",
    "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END", "INFER_RESPONSE_COMPLETE", "HTTP_SEND_START",
    "HTTP_SEND_END",
]  # fmt: skip


def add_sub(client, module, request_id: str = "") -> None:
    a = np.ones(4, np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    client.infer("add_sub", inputs, request_id=request_id)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trace")
    path = folder / "trace.json"
    log = folder / "server.log"
    server = RunningServer(
        [EXAMPLES], f"--trace-config=triton,file={path}", "--trace-config=level=TIMESTAMPS",
        "--trace-config=rate=2", f"--log-file={log}",
    )  # fmt: skip
    yield server, path, log
    server.stop()


def test_trace_records_at_the_configured_rate(traced):
    server, path, _ = traced
    http = httpclient.InferenceServerClient(server.http)
    for i in range(4):
        add_sub(http, httpclient, f"h{i}")
    grpc = grpcclient.InferenceServerClient(server.grpc)
    for i in range(2):
        add_sub(grpc, grpcclient, f"g{i}")
    server.stop()  # the trace file is written when the server stops (log_frequency 0)
    records = json.loads(path.read_text())
    models = [r for r in records if "model_name" in r]
    assert [r["request_id"] for r in models] == ["h0", "h2", "g0"]  # one of every 2 requests, per model
    first = [r["timestamps"][0]["name"] for r in records if r["id"] == models[0]["id"] and "timestamps" in r]
    assert first == HTTP_POINTS
    grpc_points = [r["timestamps"][0]["name"] for r in records if r["id"] == models[2]["id"] and "timestamps" in r]
    assert grpc_points[:2] == ["GRPC_WAITREAD_START", "GRPC_WAITREAD_END"] and grpc_points[-1] == "GRPC_SEND_END"
    stamps = [r["timestamps"][0]["ns"] for r in records if r["id"] == models[0]["id"] and "timestamps" in r]
    assert stamps[0] <= stamps[2] <= stamps[4] <= stamps[7] <= stamps[-1]


@pytest.fixture()
def plain():
    server = RunningServer([EXAMPLES])
    yield server
    server.stop()


def test_trace_settings_api_http_and_grpc(plain):
    http = httpclient.InferenceServerClient(plain.http)
    assert http.get_trace_settings()["trace_level"] == ["OFF"]
    updated = http.update_trace_settings(model_name="add_sub", settings={"trace_rate": "7", "trace_count": "3"})
    assert updated["trace_rate"] == "7" and updated["trace_count"] == "3"
    assert http.get_trace_settings()["trace_rate"] == "1000"  # the global setting is untouched
    grpc = grpcclient.InferenceServerClient(plain.grpc)
    assert grpc.get_trace_settings(model_name="add_sub", as_json=True)["settings"]["trace_rate"]["value"] == ["7"]
    cleared = http.update_trace_settings(model_name="add_sub", settings={"trace_rate": None})
    assert cleared["trace_rate"] == "1000"
    with pytest.raises(InferenceServerException, match="trace file location can not be updated"):
        grpc.update_trace_settings(settings={"trace_file": "/tmp/elsewhere"})
    answer = requests.get(f"http://{plain.http}/v2/models/nope/trace/setting", timeout=5)
    assert answer.status_code == 400 and answer.json() == {"error": "Request for unknown model : nope"}


def test_logging_settings_change_at_run_time_over_both_protocols(plain):
    server = plain
    http = httpclient.InferenceServerClient(server.http)
    assert http.get_log_settings()["log_format"] == "default"
    assert http.update_log_settings({"log_format": "ISO8601", "log_verbose_level": 1})["log_verbose_level"] == 1
    grpc = grpcclient.InferenceServerClient(server.grpc)
    settings = grpc.get_log_settings(as_json=True)["settings"]
    assert settings["log_format"]["string_param"] == "ISO8601" and settings["log_verbose_level"]["uint32_param"] == 1
    with pytest.raises(InferenceServerException, match="invalid argument for log_format, got: bad"):
        grpc.update_log_settings({"log_format": "bad"})
    answer = requests.post(f"http://{server.http}/v2/logging", json={"log_format": "bad"}, timeout=5)
    assert answer.status_code == 503 and answer.json() == {"error": "invalid argument for --log_format, got: bad"}
    grpc.update_log_settings({"log_info": False})
    assert http.get_log_settings()["log_info"] is False


def test_log_file_and_iso8601_lines(tmp_path):
    log = tmp_path / "server.log"
    server = RunningServer([EXAMPLES], f"--log-file={log}", "--log-format=ISO8601")
    try:
        deadline = time.monotonic() + 5
        while "Started HTTPService" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
    finally:
        server.stop()
    line = next(ln for ln in text.splitlines() if "Started HTTPService" in ln)
    assert line[:4].isdigit() and line[10] == "T" and line[19:22] == "Z I"
