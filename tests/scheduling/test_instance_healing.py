"""Instances that heal, through a real server: the execute watchdog (a model's TRITONLITE_EXECUTE_TIMEOUT_MS
or --model-execute-timeout-secs) and the restart of a process instance that died, in thread and process mode.

A restarted instance runs ``initialize`` again; the model below takes a second over it from its second
start on, so that the not-ready spell can be seen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

CONFIG = """
name: "m"
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "PID" data_type: TYPE_INT64 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
"""

# IN < 0: execute never returns; IN == 99: the process exits (a crash); otherwise OUT = IN, PID = its pid
MODEL = """
import os
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        starts = list(Path(args["model_repository"]).glob("start-*"))
        (Path(args["model_repository"]) / f"start-{len(starts)}-{os.getpid()}").write_text("")
        if starts:
            time.sleep(1)

    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        while x[0] < 0:
            time.sleep(0.1)
        if x[0] == 99:
            os._exit(3)
        pid = np.array([os.getpid()], dtype=np.int64)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x), pb_utils.Tensor("PID", pid)])]
"""


def _parameter(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


def _serve(root: Path, parameters: str, *flags: str) -> RunningServer:
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "config.pbtxt").write_text(CONFIG + parameters)
    (root / "m" / "1" / "model.py").write_text(MODEL)
    return RunningServer([root], *flags)


def _infer(server: RunningServer, value: float) -> tuple[float, int]:
    client = httpclient.InferenceServerClient(server.http, network_timeout=30)
    tensor = httpclient.InferInput("IN", [1], "FP32")
    tensor.set_data_from_numpy(np.array([value], dtype=np.float32))
    result = client.infer("m", [tensor])
    return float(result.as_numpy("OUT")[0]), int(result.as_numpy("PID")[0])


def _ready(server: RunningServer) -> bool:
    return requests.get(f"http://{server.http}/v2/models/m/ready", timeout=5).status_code == 200


def _wait_ready(server: RunningServer, ready: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _ready(server) != ready:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _restarts(server: RunningServer) -> str:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    return next(line for line in text.splitlines() if line.startswith('nv_model_instance_restarts{model="m"'))


def _starts(root: Path) -> list[int]:
    """The process ids that ran initialize, in order."""
    names = sorted(root.glob("m/start-*"), key=lambda path: int(path.name.split("-")[1]))
    return [int(path.name.split("-")[2]) for path in names]


@pytest.mark.parametrize(
    "mode, parameters, flags",
    [
        ("thread", _parameter("TRITONLITE_EXECUTE_TIMEOUT_MS", "1000"), ()),
        ("process", _parameter("TRITONLITE_INSTANCE_MODE", "process"), ("--model-execute-timeout-secs=1",)),
    ],
    ids=["thread-parameter", "process-flag"],
)
def test_execute_past_its_limit_fails_and_the_instance_is_replaced(tmp_path, mode, parameters, flags):
    server = _serve(tmp_path, parameters, *flags)
    try:
        assert _infer(server, 1.0)[0] == 1.0
        started = time.monotonic()
        with pytest.raises(InferenceServerException) as hung:
            _infer(server, -1.0)
        assert time.monotonic() - started < 4
        assert hung.value.status() == "503"
        assert hung.value.message() == (
            "model 'm' did not finish executing the request(s) within its execute time limit of 1 s; "
            "instance 'm_0_0' is being restarted"
        )
        assert not _ready(server)  # until the new instance has initialized
        assert _wait_ready(server, True, 15)
        assert _infer(server, 2.0)[0] == 2.0
        assert _restarts(server) == 'nv_model_instance_restarts{model="m",version="1"} 1'
        assert "instance 'm_0_0' of model 'm' restarted (execute exceeded 1 s)" in server.log()
        first, second = _starts(tmp_path)
        if mode == "process":  # the hung stub was killed; a new one runs the model
            assert first != second != os.getpid() and server.process.pid not in (first, second)
            assert not Path(f"/proc/{first}").exists() or "Z" in Path(f"/proc/{first}/stat").read_text().split()[2]
        else:  # a new instance on a new thread of the server; the stuck thread is left behind
            assert first == second == server.process.pid
    finally:
        server.stop()


def test_a_crashed_process_instance_restarts_at_once(tmp_path):
    server = _serve(tmp_path, _parameter("TRITONLITE_INSTANCE_MODE", "process"))
    try:
        first_pid = _infer(server, 1.0)[1]
        with pytest.raises(InferenceServerException) as crashed:
            _infer(server, 99.0)
        assert crashed.value.status() == "503"  # Triton 2.51: 500; UNAVAILABLE says a retry may work
        assert crashed.value.message().endswith("Stub process 'm_0_0' is not healthy.")
        assert _wait_ready(server, False, 2)
        assert _wait_ready(server, True, 15)  # restarted without waiting for a request
        assert _starts(tmp_path)[1] != first_pid
        assert _restarts(server) == 'nv_model_instance_restarts{model="m",version="1"} 1'
        assert "instance 'm_0_0' of model 'm' restarted (stub process exited (status 3))" in server.log()
        value, pid = _infer(server, 2.0)
        assert value == 2.0 and pid == _starts(tmp_path)[1]
    finally:
        server.stop()


def test_no_watchdog_without_a_limit(tmp_path):
    server = _serve(tmp_path, "")
    try:
        assert _infer(server, 3.0)[0] == 3.0
        assert _restarts(server) == 'nv_model_instance_restarts{model="m",version="1"} 0'
        assert _ready(server)
    finally:
        server.stop()


def test_a_bad_limit_fails_the_load(tmp_path):
    server = _serve(tmp_path, _parameter("TRITONLITE_EXECUTE_TIMEOUT_MS", "soon"), "--exit-on-error=false")
    try:
        index = requests.post(f"http://{server.http}/v2/repository/index", timeout=5).json()
        assert index == [
            {
                "name": "m",
                "version": "1",
                "state": "UNAVAILABLE",
                "reason": "Invalid argument: parameter TRITONLITE_EXECUTE_TIMEOUT_MS of model 'm' must be a number of "
                "milliseconds (0 for no limit), got 'soon'",
            }
        ]
    finally:
        server.stop()
