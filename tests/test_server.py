"""The server process: startup table, failed models, exit-on-error, clean shutdown, perf_analyzer."""

from __future__ import annotations

import signal
import subprocess

import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES, PERF_ANALYZER, TEST_REPOSITORY
from serverutil import RunningServer


@pytest.fixture(scope="module")
def broken_server():
    server = RunningServer([TEST_REPOSITORY], "--exit-on-error=false")
    yield server
    server.stop()


def test_failed_models_are_unavailable_with_reasons_and_others_ready(broken_server):
    client = httpclient.InferenceServerClient(broken_server.http)
    index = {row["name"]: row for row in client.get_model_repository_index()}
    assert index["bad_config"]["state"] == "UNAVAILABLE"
    reason = index["bad_config"]["reason"]
    config_path = TEST_REPOSITORY.resolve() / "bad_config" / "config.pbtxt"
    assert str(config_path) in reason and "line 4, column 1" in reason
    assert index["init_fails"]["state"] == "UNAVAILABLE"
    assert index["init_fails"]["reason"].startswith("Internal: Exception: initialize failed on purpose\n\nAt:\n")
    assert "model.py(7): initialize" in index["init_fails"]["reason"]
    ready = [name for name, row in index.items() if row["state"] == "READY"]
    assert set(ready) == {p.name for p in TEST_REPOSITORY.iterdir()} - {"bad_config", "init_fails"}
    # the same through gRPC
    grpc_index = grpcclient.InferenceServerClient(broken_server.grpc).get_model_repository_index()
    grpc_rows = {m.name: m for m in grpc_index.models}
    assert (
        grpc_rows["init_fails"].state == "UNAVAILABLE"
        and grpc_rows["init_fails"].reason == index["init_fails"]["reason"]
    )
    # server is live but not ready (strict readiness), and keeps serving the good models
    assert client.is_server_live() and not client.is_server_ready()
    assert client.is_model_ready("add_sub") and not client.is_model_ready("init_fails")


def test_failed_models_are_in_the_log_and_startup_table(broken_server):
    log = broken_server.log()
    assert "| Model" in log and "| add_sub" in log
    assert "UNAVAILABLE: Internal: Exception: initialize failed on purpose" in log
    assert "failed to parse model configuration" in log and "bad_config" in log
    assert "Started HTTPService at 127.0.0.1" in log and "Started GRPCInferenceService at 127.0.0.1" in log


def test_crashing_model_does_not_stop_the_server(broken_server):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
    for _ in range(3):
        answer = requests.post(f"http://{broken_server.http}/v2/models/exec_raises/infer", json=body, timeout=10)
        assert answer.status_code == 500 and "Exception: boom" in answer.json()["error"]
    add_sub = {
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]},
        ]
    }
    answer = requests.post(f"http://{broken_server.http}/v2/models/add_sub/infer", json=add_sub, timeout=10)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [2, 3, 4, 5]


def test_exit_on_error_is_the_default_as_in_triton():
    server = RunningServer([TEST_REPOSITORY], wait_ready=False)
    try:
        code = server.process.wait(60)
    finally:
        server.stop()
    assert code == 1
    assert "failed to load all models" in server.log()
    # Triton 2.51's last line in the default control mode (reference_data/README.md)
    assert server.log().rstrip().endswith("error: creating server: Internal - failed to load all models")


def test_sigterm_and_sigint_shut_down_cleanly():
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = RunningServer([EXAMPLES])
        assert requests.get(f"http://{server.http}/v2/health/ready", timeout=5).status_code == 200
        server.process.send_signal(sig)
        code = server.process.wait(30)
        server.stop()
        assert code == 0, server.log()
        assert "tritonlite stopped" in server.log()


def test_port_in_use_is_a_clear_startup_error():
    first = RunningServer([EXAMPLES])
    try:
        second = RunningServer([EXAMPLES], f"--http-port={first.http_port}", wait_ready=False)
        second.http_port = first.http_port
        assert second.process.wait(60) == 1
        second.stop()
        assert "failed to start HTTPService" in second.log()
    finally:
        first.stop()


@pytest.mark.skipif(
    not PERF_ANALYZER.exists(), reason="reference perf_analyzer not installed (python3 scripts/get_reference.py)"
)
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_runs_error_free(protocol):
    server = RunningServer([EXAMPLES])
    try:
        url = server.http if protocol == "http" else server.grpc
        result = subprocess.run(
            [str(PERF_ANALYZER), "-m", "add_sub", "-i", protocol, "-u", url,
             "--concurrency-range", "1:2", "--measurement-interval", "1000", "--measurement-mode", "time_windows",
             # compatibility, not speed: any window is "stable", so a busy machine cannot fail it
             "--stability-percentage", "1000", "--max-trials", "3"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Throughput:" in output and "error" not in output.lower(), output


def test_oversize_body_is_refused_and_server_keeps_serving():
    server = RunningServer([EXAMPLES], "--http-max-input-size=4096")
    try:
        big = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2000], "data": [0.5] * 2000}]}
        answer = requests.post(f"http://{server.http}/v2/models/identity/infer", json=big, timeout=10)
        assert answer.status_code == 400
        assert "exceeds the maximum allowed value of 4096 bytes" in answer.json()["error"]
        small = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        answer = requests.post(f"http://{server.http}/v2/models/identity/infer", json=small, timeout=10)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [1, 2]
    finally:
        server.stop()
