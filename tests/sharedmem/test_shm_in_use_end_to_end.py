"""A region that requests in flight use cannot be unregistered (Triton 2.51's answers, captured from the
reference server); a NUL in a key is read as Triton reads it (a C string)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

CONFIG = """
name: "gated"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
"""

# Each execution leaves a marker, then waits for the test to open the gate (no timing guesses).
MODEL = """
import os, time, uuid
import triton_python_backend_utils as pb_utils

GATE = {gate!r}


class TritonPythonModel:
    def execute(self, requests):
        open(os.path.join(GATE, "started-" + uuid.uuid4().hex), "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(GATE, "open")) and time.monotonic() < deadline:
            time.sleep(0.01)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x + 1)]))
        return out
"""


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gated_repo")
    gate = tmp_path_factory.mktemp("gate")
    (root / "gated" / "1").mkdir(parents=True)
    (root / "gated" / "config.pbtxt").write_text(CONFIG)
    (root / "gated" / "1" / "model.py").write_text(MODEL.format(gate=str(gate)))
    running = RunningServer([root])
    yield running, gate
    running.stop()


@pytest.fixture()
def regions():
    tag = uuid.uuid4().hex[:8]
    handles = {
        kind: shm.create_shared_memory_region(f"{kind}_{tag}", f"/tl_use_{kind}_{tag}", 64)
        for kind in ("in", "out", "idle")
    }
    shm.set_shared_memory_region(handles["in"], [np.arange(4, dtype=np.float32)])
    yield tag, handles
    for handle in handles.values():
        shm.destroy_shared_memory_region(handle)


def _wait_started(gate: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(list(gate.glob("started-*"))) < count:
        assert time.monotonic() < deadline, "the model never started"
        time.sleep(0.01)


def _unregister(protocol: str, address: str, name: str) -> tuple[object, str]:
    """(HTTP status or gRPC code, error text) of an unregister; (200 or 'OK', '') when it succeeds."""
    if protocol == "http":
        path = f"/v2/systemsharedmemory/region/{name}/unregister" if name else "/v2/systemsharedmemory/unregister"
        answer = requests.post(f"http://{address}{path}", timeout=10)
        return answer.status_code, answer.json()["error"] if answer.text else ""
    try:
        grpcclient.InferenceServerClient(address).unregister_system_shared_memory(name)
    except InferenceServerException as exc:
        return exc.status(), exc.message()
    return "OK", ""


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_regions_in_use_are_not_unregistered_and_every_request_succeeds(gated, regions, protocol):
    server, gate = gated
    for marker in gate.iterdir():
        marker.unlink()
    tag, handles = regions
    module = httpclient if protocol == "http" else grpcclient
    address = server.http if protocol == "http" else server.grpc
    client = module.InferenceServerClient(address)
    client.unregister_system_shared_memory()
    for kind in ("in", "out", "idle"):
        client.register_system_shared_memory(f"{kind}_{tag}", f"/tl_use_{kind}_{tag}", 64)
    results: list[object] = []

    def infer(slot: int) -> None:
        inputs = [module.InferInput("INPUT0", [4], "FP32")]
        if slot == 0:
            inputs[0].set_shared_memory(f"in_{tag}", 16)
        else:
            inputs[0].set_data_from_numpy(np.arange(4, dtype=np.float32) * 10)
        output = module.InferRequestedOutput("OUTPUT0")
        output.set_shared_memory(f"out_{tag}", 16, offset=16 * slot)
        try:
            module.InferenceServerClient(address).infer("gated", inputs, outputs=[output])
            results.append("ok")
        except InferenceServerException as exc:
            results.append(exc)

    threads = [threading.Thread(target=infer, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    try:
        _wait_started(gate, 2)
        internal = 500 if protocol == "http" else "StatusCode.INTERNAL"
        assert _unregister(protocol, address, f"out_{tag}") == (
            internal, f"Cannot unregister shared memory region 'out_{tag}', it is currently in use.")  # fmt: skip
        assert _unregister(protocol, address, f"in_{tag}") == (
            internal, f"Cannot unregister shared memory region 'in_{tag}', it is currently in use.")  # fmt: skip
        # unregister-all removes the idle region and names those in use (sorted, as Triton does)
        assert _unregister(protocol, address, "") == (
            internal,
            f"Failed to unregister the following system shared memory regions: in_{tag} ,out_{tag} ,",
        )
        status = client.get_system_shared_memory_status()
        names = [r["name"] for r in status] if protocol == "http" else list(status.regions)
        assert sorted(names) == [f"in_{tag}", f"out_{tag}"]
    finally:
        (gate / "open").touch()
        for thread in threads:
            thread.join(60)
        (gate / "open").unlink()
    assert results == ["ok", "ok"]
    written = shm.get_contents_as_numpy(handles["out"], np.float32, [8])
    np.testing.assert_array_equal(written, np.concatenate([np.arange(4) + 1, np.arange(4) * 10 + 1]))
    ok = (200, "") if protocol == "http" else ("OK", "")
    assert _unregister(protocol, address, "") == ok  # the answers are written: nothing is in use
    assert client.get_system_shared_memory_status() in ([], grpcclient.service_pb2.SystemSharedMemoryStatusResponse())


def test_failed_requests_leave_their_regions_free(gated, regions):
    server, _ = gated
    tag, _ = regions
    client = httpclient.InferenceServerClient(server.http)
    client.unregister_system_shared_memory()
    client.register_system_shared_memory(f"in_{tag}", f"/tl_use_in_{tag}", 64)
    client.register_system_shared_memory(f"out_{tag}", f"/tl_use_out_{tag}", 64)
    inputs = [httpclient.InferInput("INPUT0", [5], "FP32")]  # the wrong shape: refused before it runs
    inputs[0].set_shared_memory(f"in_{tag}", 20)
    output = httpclient.InferRequestedOutput("OUTPUT0")
    output.set_shared_memory(f"out_{tag}", 16)
    with pytest.raises(InferenceServerException):
        client.infer("gated", inputs, outputs=[output])
    assert _unregister("http", server.http, "") == (200, "")


def test_nul_in_key_reads_as_a_c_string(gated, regions):
    """Triton 2.51 opens the key up to its first NUL; its HTTP text quotes that part, its gRPC text ends
    at the NUL (the message is a C string)."""
    server, _ = gated
    tag, _ = regions
    base = f"http://{server.http}/v2/systemsharedmemory"
    grpc = grpcclient.InferenceServerClient(server.grpc)
    opening = "Unable to open shared memory region: "
    for key, http_text, grpc_text in [
        ("/tl_no\0such", f"{opening}'/tl_no'", f"{opening}'/tl_no"),
        ("\0", f"{opening}''", f"{opening}'"),
    ]:
        answer = requests.post(f"{base}/region/nul/register", timeout=10,
                               data=json.dumps({"key": key, "offset": 0, "byte_size": 8}))  # fmt: skip
        assert (answer.status_code, answer.json()) == (500, {"error": http_text})
        with pytest.raises(InferenceServerException) as info:
            grpc.register_system_shared_memory("nul", key, 8)
        assert (info.value.status(), info.value.message()) == ("StatusCode.INTERNAL", grpc_text)
    # a NUL after the key: the region opens (HTTP keeps the key up to the NUL)
    answer = requests.post(f"{base}/region/nul/register", timeout=10,
                           data=json.dumps({"key": f"/tl_use_idle_{tag}\0", "offset": 0, "byte_size": 8}))  # fmt: skip
    assert answer.status_code == 200
    assert requests.get(f"{base}/region/nul/status", timeout=10).json()[0]["key"] == f"/tl_use_idle_{tag}"
    assert requests.post(f"{base}/region/nul/unregister", timeout=10).status_code == 200
    assert requests.get(f"http://{server.http}/v2/health/live", timeout=10).status_code == 200
