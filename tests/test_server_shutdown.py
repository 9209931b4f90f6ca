"""Shutdown bounded by --exit-timeout-secs when a model never returns, in thread and process mode.

Triton 2.51 (reference server, a python model whose execute loops forever, one request to it and one
to a model that takes 2 s, SIGTERM with --exit-timeout-secs=5): the 2 s request is answered (200), the
process exits 5.3 s after the signal with status 1 and the last words "failed to stop server: Internal
- Exit timeout expired. Exiting immediately."; the hung request's connection is closed unanswered.
tritonlite answers it instead (503, UNAVAILABLE over gRPC).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

EXIT_TIMEOUT_S = 2
MARGIN_S = 4.0  # startup of the shutdown, the grace for answers and unloading, process exit

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: {count} kind: KIND_CPU }} ]
"""

# writes its process id where the test can find it, then executes for ever (or for a second)
MODEL = """
import os
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        (Path(args["model_repository"]) / f"pid-{{os.getpid()}}").write_text("")

    def execute(self, requests):
        while {forever}:
            time.sleep(1)
        time.sleep(1)
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())])
            for r in requests
        ]
"""


def _write_model(root: Path, name: str, forever: bool, count: int = 1) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, count=count))
    (root / name / "1" / "model.py").write_text(MODEL.format(forever=forever))


def _pids(folder: Path) -> list[int]:
    return [int(path.name.split("-")[1]) for path in folder.glob("pid-*")]


def _alive(pid: int) -> bool:
    """A process that runs (a zombie, exited and waiting for its parent's wait, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_sigterm_with_a_hung_model_exits_after_the_exit_timeout(tmp_path, mode):
    _write_model(tmp_path, "hung", forever=True, count=2)
    _write_model(tmp_path, "quick", forever=False)
    server = RunningServer([tmp_path], f"--exit-timeout-secs={EXIT_TIMEOUT_S}", f"--python-instance-mode={mode}")
    answers: dict[str, object] = {}

    def http_infer(model: str) -> None:
        client = httpclient.InferenceServerClient(server.http, network_timeout=60)
        tensor = httpclient.InferInput("IN", [1], "FP32")
        tensor.set_data_from_numpy(np.array([3.0], dtype=np.float32))
        try:
            answers[f"http {model}"] = client.infer(model, [tensor]).as_numpy("OUT")
        except InferenceServerException as exc:
            answers[f"http {model}"] = exc

    def grpc_infer(model: str) -> None:
        client = grpcclient.InferenceServerClient(server.grpc)
        tensor = grpcclient.InferInput("IN", [1], "FP32")
        tensor.set_data_from_numpy(np.array([3.0], dtype=np.float32))
        try:
            answers[f"grpc {model}"] = client.infer(model, [tensor], client_timeout=60).as_numpy("OUT")
        except InferenceServerException as exc:
            answers[f"grpc {model}"] = exc

    try:
        calls = [
            threading.Thread(target=http_infer, args=("hung",)),
            threading.Thread(target=grpc_infer, args=("hung",)),
            threading.Thread(target=http_infer, args=("quick",)),
        ]
        for call in calls:
            call.start()
        time.sleep(0.5)  # the requests are executing
        stubs = _pids(tmp_path / "hung")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(EXIT_TIMEOUT_S + MARGIN_S + 10)
        took = time.monotonic() - started
        for call in calls:
            call.join(10)
    finally:
        server.stop()
    log = server.log()
    assert status == 1, log
    assert EXIT_TIMEOUT_S <= took < EXIT_TIMEOUT_S + MARGIN_S, log
    assert "failed to stop server: Internal - Exit timeout expired. Exiting immediately." in log
    np.testing.assert_array_equal(answers["http quick"], [3.0])  # it finished in time
    http_error, grpc_error = answers["http hung"], answers["grpc hung"]
    assert isinstance(http_error, InferenceServerException) and http_error.status() == "503", answers
    assert isinstance(grpc_error, InferenceServerException) and grpc_error.status() == "StatusCode.UNAVAILABLE"
    for error in (http_error, grpc_error):
        assert "Exit timeout expired" in error.message() and "'hung'" in error.message()
    if mode == "process":  # the hung stubs were killed, not left behind
        assert len(stubs) == 2 and os.getpid() not in stubs
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in stubs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in stubs)


def test_sigterm_while_a_request_finishes_in_time_exits_cleanly(tmp_path):
    _write_model(tmp_path, "quick", forever=False)
    server = RunningServer([tmp_path], f"--exit-timeout-secs={EXIT_TIMEOUT_S}")
    answers: list[object] = []

    def infer() -> None:
        client = httpclient.InferenceServerClient(server.http, network_timeout=60)
        tensor = httpclient.InferInput("IN", [1], "FP32")
        tensor.set_data_from_numpy(np.array([5.0], dtype=np.float32))
        answers.append(client.infer("quick", [tensor]).as_numpy("OUT"))

    try:
        call = threading.Thread(target=infer)
        call.start()
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(EXIT_TIMEOUT_S + MARGIN_S + 10)
        call.join(10)
    finally:
        server.stop()
    assert status == 0, server.log()
    np.testing.assert_array_equal(answers[0], [5.0])


def test_the_backstop_ends_a_process_whose_shutdown_is_blocked():
    # what the server starts on a stop signal: even a loop blocked for good does not keep the process
    code = "import time; from tritonlite.server import _start_backstop; _start_backstop(0.2); time.sleep(30)"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert run.returncode == 1
    assert time.monotonic() - started < 10
    assert "Exit timeout expired. Exiting immediately." in run.stderr
