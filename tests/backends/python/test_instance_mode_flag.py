"""--python-instance-mode: every python model's instances out of process (or in threads) without editing
configs; a model's own TRITONLITE_INSTANCE_MODE still decides for it, and decoupled models stay on threads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from serverutil import RunningServer

CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "PID" data_type: TYPE_INT64 dims: [ 1 ] } ]
"""

MODEL = """
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        pid = np.array([os.getpid()], dtype=np.int64)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("PID", pid)]) for _ in requests]
"""

DECOUPLED = """
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            pid = np.array([os.getpid()], dtype=np.int64)
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("PID", pid)]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


def _model(root: Path, name: str, extra: str = "", source: str = MODEL) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(CONFIG + extra)
    (root / name / "1" / "model.py").write_text(source)


def _pid(server: RunningServer, model: str) -> int:
    client = httpclient.InferenceServerClient(server.http)
    tensor = httpclient.InferInput("IN", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    return int(client.infer(model, [tensor]).as_numpy("PID")[0])


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("instance_mode")
    _model(root, "plain")
    _model(root, "pinned", 'parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "thread" } }\n')
    _model(root, "streaming", "model_transaction_policy { decoupled: true }\n", DECOUPLED)
    return root


@pytest.mark.parametrize("flags", [(), ("--python-instance-mode=thread",)], ids=["default", "thread"])
def test_thread_mode_runs_models_in_the_server(repository, flags):
    server = RunningServer([repository], *flags)
    try:
        assert _pid(server, "plain") == _pid(server, "pinned") == server.process.pid
    finally:
        assert server.stop() == 0


def test_process_mode_runs_every_model_out_of_process_but_those_that_say(repository):
    server = RunningServer([repository], "--python-instance-mode=process")
    try:
        stub = _pid(server, "plain")
        assert stub != server.process.pid
        assert _pid(server, "pinned") == server.process.pid  # its config says thread
        # a decoupled model runs on a thread (process mode does not serve decoupled models yet)
        assert requests.get(f"http://{server.http}/v2/models/streaming/ready", timeout=5).status_code == 200
    finally:
        assert server.stop() == 0
    assert not Path(f"/proc/{stub}").exists() or " Z " in Path(f"/proc/{stub}/stat").read_text()


def test_unknown_mode_is_refused():
    run = subprocess.run(
        [sys.executable, "-m", "tritonlite", "--model-repository=/nonexistent", "--python-instance-mode=fork"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "--python-instance-mode: invalid choice: 'fork'" in run.stderr
