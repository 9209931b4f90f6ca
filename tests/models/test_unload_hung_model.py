"""Unloading a model whose execute never returns: bounded by --exit-timeout-secs, as the shutdown is."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

CONFIG = """
name: "hung"
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""

MODEL = """
import time


class TritonPythonModel:
    def execute(self, requests):
        while True:
            time.sleep(1)
"""


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_unload_of_a_hung_model_ends_after_the_exit_timeout(tmp_path, mode):
    (tmp_path / "hung" / "1").mkdir(parents=True)
    (tmp_path / "hung" / "config.pbtxt").write_text(CONFIG)
    (tmp_path / "hung" / "1" / "model.py").write_text(MODEL)
    server = RunningServer(
        [tmp_path],
        "--model-control-mode=explicit",
        "--load-model=hung",
        "--exit-timeout-secs=1",
        f"--python-instance-mode={mode}",
    )
    client = httpclient.InferenceServerClient(server.http, network_timeout=30)
    errors: list[InferenceServerException] = []

    def infer() -> None:
        tensor = httpclient.InferInput("IN", [1], "FP32")
        tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
        try:
            httpclient.InferenceServerClient(server.http, network_timeout=30).infer("hung", [tensor])
        except InferenceServerException as exc:
            errors.append(exc)

    try:
        call = threading.Thread(target=infer)
        call.start()
        time.sleep(0.3)
        started = time.monotonic()
        client.unload_model("hung")
        took = time.monotonic() - started
        call.join(10)
        assert not client.is_model_ready("hung")
        assert server.process.poll() is None  # the server serves on
    finally:
        assert server.stop() == 0
    assert took < 4, server.log()
    [error] = errors
    assert error.status() == "503"
    assert error.message() == (
        "Exit timeout expired: it was unloaded before model 'hung' version 1 finished executing the request"
    )
