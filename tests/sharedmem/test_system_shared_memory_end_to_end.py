"""System shared memory over HTTP and gRPC with tritonclient's utilities; errors as Triton 2.51."""

from __future__ import annotations

import base64
import subprocess
import uuid

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from conftest import EXAMPLES, PERF_ANALYZER
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def server():
    running = RunningServer([EXAMPLES])
    yield running
    running.stop()


@pytest.fixture()
def regions():
    tag = uuid.uuid4().hex[:8]
    inputs = shm.create_shared_memory_region(f"in_{tag}", f"/tl_in_{tag}", 64)
    outputs = shm.create_shared_memory_region(f"out_{tag}", f"/tl_out_{tag}", 32)
    shm.set_shared_memory_region(inputs, [np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)])
    yield tag, inputs, outputs
    shm.destroy_shared_memory_region(inputs)
    shm.destroy_shared_memory_region(outputs)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inputs_and_outputs_in_regions(server, regions, protocol):
    tag, _, out_handle = regions
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.http if protocol == "http" else server.grpc)
    client.unregister_system_shared_memory()
    client.register_system_shared_memory(f"in_{tag}", f"/tl_in_{tag}", 64)
    client.register_system_shared_memory(f"out_{tag}", f"/tl_out_{tag}", 32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_shared_memory(f"in_{tag}", 16)
    inputs[1].set_shared_memory(f"in_{tag}", 16, offset=16)
    outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    outputs[0].set_shared_memory(f"out_{tag}", 16)
    outputs[1].set_shared_memory(f"out_{tag}", 16, offset=16)
    client.infer("add_sub", inputs, outputs=outputs)
    got = shm.get_contents_as_numpy(out_handle, np.float32, [8])
    np.testing.assert_array_equal(got[:4], np.arange(4) + 0.5)
    np.testing.assert_array_equal(got[4:], np.arange(4) - 0.5)
    status = client.get_system_shared_memory_status()
    names = [r["name"] for r in status] if protocol == "http" else list(status.regions)
    assert sorted(names) == sorted([f"in_{tag}", f"out_{tag}"])
    client.unregister_system_shared_memory()
    status = client.get_system_shared_memory_status()
    assert (status == []) if protocol == "http" else not status.regions


def post(server, path, body=None):
    return requests.post(f"http://{server.http}{path}", json=body, timeout=10)


def test_errors_match_triton(server, regions):
    tag, _, _ = regions
    base = "/v2/systemsharedmemory"
    register = {"key": f"/tl_in_{tag}", "offset": 0, "byte_size": 64}
    assert post(server, f"{base}/region/in_{tag}/register", register).status_code == 200
    cases = [  # (answer, status, Triton 2.51's text)
        (post(server, f"{base}/region/in_{tag}/register", register), 400,
         f"shared memory region 'in_{tag}' already in manager"),
        (post(server, f"{base}/region/bad/register", {"key": "/tl_missing_key", "offset": 0, "byte_size": 8}), 500,
         "Unable to open shared memory region: '/tl_missing_key'"),
        (post(server, f"{base}/region/big/register", {"key": f"/tl_out_{tag}", "offset": 0, "byte_size": 1 << 20}),
         400, "failed to register shared memory region 'big': invalid args"),
        (post(server, f"{base}/region/x/register", {"offset": 0}), 400,
         "Shared memory register request has no 'key' field"),
        (requests.get(f"http://{server.http}{base}/region/zzz/status", timeout=10), 404,
         "Unable to find system shared memory region: 'zzz'"),
    ]  # fmt: skip

    def infer(first_params, outputs=None):
        body = {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": first_params},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]},
            ]
        }
        if outputs:
            body["outputs"] = outputs
        return post(server, "/v2/models/add_sub/infer", body)

    region = {"shared_memory_region": f"in_{tag}", "shared_memory_byte_size": 16}
    cases += [
        (infer({"shared_memory_region": "nope", "shared_memory_byte_size": 16}), 404,
         "Unable to find shared memory region: 'nope'"),
        (infer({**region, "shared_memory_offset": 60}), 400,
         f"Invalid offset + byte size for shared memory region: 'in_{tag}'"),
        (infer({**region, "shared_memory_byte_size": 12}), 400,
         "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'add_sub'. "
         "Expected 16, got 12"),
        (infer(region, [{"name": "OUTPUT0", "parameters": {"shared_memory_region": f"in_{tag}",
                                                          "shared_memory_byte_size": 8}}]), 500,
         "shared memory size specified with the request for output 'OUTPUT0' (8 bytes) should be at least 16 bytes "
         "to hold the results"),
    ]  # fmt: skip
    for answer, status, text in cases:
        assert (answer.status_code, answer.json()) == (status, {"error": text})
    both = post(server, "/v2/models/add_sub/infer", {"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4], "parameters": region},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]})  # fmt: skip
    assert both.status_code == 400 and both.json()["error"].endswith("But set 'data' 'shared_memory_region'")
    assert post(server, f"{base}/region/zzz/unregister").status_code == 200  # unknown: fine, as in Triton
    grpc = grpcclient.InferenceServerClient(server.grpc)
    with pytest.raises(InferenceServerException) as info:
        grpc.register_system_shared_memory(f"in_{tag}", f"/tl_in_{tag}", 64)
    assert info.value.status() == "StatusCode.ALREADY_EXISTS"
    post(server, f"{base}/unregister")


def test_cuda_registration_without_a_gpu_is_tritons_error(server):
    pytest.importorskip("tritonclient")
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("a GPU is present: the device check covers CUDA shared memory")
    except Exception:
        pass
    handle = base64.b64encode(b"x" * 64).decode()  # a cudaIpcMemHandle_t's 64 bytes, of no device here
    answer = post(server, "/v2/cudasharedmemory/region/c/register",
                  {"raw_handle": {"b64": handle}, "device_id": 0, "byte_size": 16})  # fmt: skip
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "failed to register shared memory region: invalid args"},
    )
    assert requests.get(f"http://{server.http}/v2/cudasharedmemory/status", timeout=10).json() == []


@pytest.mark.skipif(not PERF_ANALYZER.exists(), reason="no reference perf_analyzer (python3 scripts/get_reference.py)")
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_with_system_shared_memory(server, protocol):
    url = server.http if protocol == "http" else server.grpc
    result = subprocess.run(
        [str(PERF_ANALYZER), "-m", "add_sub", "-i", protocol, "-u", url, "--shared-memory=system",
         "--concurrency-range", "1:2", "--measurement-interval", "1000",
         # compatibility, not speed: any window is "stable", so a busy machine cannot fail it
         "--stability-percentage", "1000", "--max-trials", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Throughput:" in output and "error" not in output.lower(), output
