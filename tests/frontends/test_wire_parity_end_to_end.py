"""Wire answers that must be Triton's to the letter, on a real server: shared-memory outputs over gRPC,
shared-memory registration with missing or bad fields, repository loads with a malformed body or 'file:'
without 'config'. Every expected value below was captured from Triton 2.51 (the real server, HTTP and gRPC)."""

from __future__ import annotations

import base64
import uuid

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from conftest import TEST_REPOSITORY
from serverutil import RunningServer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def server():
    running = RunningServer(
        [TEST_REPOSITORY], "--model-control-mode=explicit", "--load-model=add_sub", "--exit-on-error=false"
    )
    yield running
    running.stop()


def post(server, path: str, body: str) -> tuple[int, str]:
    answer = requests.post(f"http://{server.http}{path}", data=body, timeout=30)
    return answer.status_code, answer.json().get("error", "") if answer.content else ""


# --- shared-memory outputs over gRPC ---------------------------------------------------------------


def test_grpc_output_in_a_region_carries_no_shared_memory_parameters(server):
    tag = uuid.uuid4().hex[:8]
    handle = shm.create_shared_memory_region(f"out_{tag}", f"/tl_parity_{tag}", 64)
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    try:
        stub.SystemSharedMemoryRegister(
            pb.SystemSharedMemoryRegisterRequest(name=f"out_{tag}", key=f"/tl_parity_{tag}", byte_size=64)
        )
        request = pb.ModelInferRequest(model_name="add_sub")
        for name in ("INPUT0", "INPUT1"):
            request.inputs.add(name=name, datatype="FP32", shape=[4])
            request.raw_input_contents.append(np.arange(4, dtype=np.float32).tobytes())
        in_region = request.outputs.add(name="OUTPUT0")
        in_region.parameters["shared_memory_region"].string_param = f"out_{tag}"
        in_region.parameters["shared_memory_byte_size"].int64_param = 16
        request.outputs.add(name="OUTPUT1")
        reply = stub.ModelInfer(request)
        # Triton 2.51: outputs hold name, datatype and shape only; the region's output has an empty raw entry
        assert [(o.name, o.datatype, list(o.shape), dict(o.parameters)) for o in reply.outputs] == [
            ("OUTPUT0", "FP32", [4], {}),
            ("OUTPUT1", "FP32", [4], {}),
        ]
        assert [len(raw) for raw in reply.raw_output_contents] == [0, 16]
        assert shm.get_contents_as_numpy(handle, np.float32, [4]).tolist() == [0.0, 2.0, 4.0, 6.0]
    finally:
        stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name=f"out_{tag}"))
        shm.destroy_shared_memory_region(handle)


# --- shared-memory registration ------------------------------------------------------------------

MISSING_KEY = "/tl_parity_no_such_key"
NOT_UNSIGNED = "attempt to access JSON non-unsigned-integer as unsigned-integer"
SYSTEM_REGISTER = [  # body -> (status, error), captured from Triton 2.51
    (f'{{"key":"{MISSING_KEY}","offset":0}}', 400, "Shared memory register request has no 'byte_size' field"),
    (f'{{"key":"{MISSING_KEY}"}}', 400, "Shared memory register request has no 'byte_size' field"),
    ('{"byte_size":16}', 400, "Shared memory register request has no 'key' field"),
    ("{}", 400, "Shared memory register request has no 'key' field"),
    ("[1]", 400, "Shared memory register request has no 'key' field"),
    ('{"key":5}', 500, "attempt to access JSON non-string as string"),
    ('{"key":5,"byte_size":16}', 500, "attempt to access JSON non-string as string"),
    (f'{{"key":"{MISSING_KEY}","byte_size":"16"}}', 500,
     NOT_UNSIGNED),
    (f'{{"key":"{MISSING_KEY}","byte_size":-1}}', 500, NOT_UNSIGNED),
    (f'{{"key":"{MISSING_KEY}","byte_size":true}}', 500,
     NOT_UNSIGNED),
    (f'{{"key":"{MISSING_KEY}","byte_size":16,"offset":"0"}}', 500,
     NOT_UNSIGNED),
    (f'{{"key":"{MISSING_KEY}","byte_size":16}}', 500, f"Unable to open shared memory region: '{MISSING_KEY}'"),
    ("{bad", 500, "failed to parse the request JSON buffer: Missing a name for object member. at 1"),
    ("", 500, "failed to parse the request JSON buffer: The document is empty. at 0"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "error"), SYSTEM_REGISTER)
def test_system_register_checks_its_fields_as_triton(server, body, status, error):
    assert post(server, "/v2/systemsharedmemory/region/r/register", body) == (status, error)


HANDLE_64 = base64.b64encode(b"\0" * 64).decode()
HANDLE_63 = base64.b64encode(b"\0" * 63).decode()
BAD_HANDLE = "'raw_handle' must be a valid base64 encoded cudaIpcMemHandle_t"
CUDA_REGISTER = [  # body -> (status, error), captured from Triton 2.51 (on a machine without a GPU)
    ('{"raw_handle":{"b64":"!!!"},"device_id":0,"byte_size":16}', 400, BAD_HANDLE),
    ('{"raw_handle":{"b64":"AAAA"},"device_id":0,"byte_size":16}', 400, BAD_HANDLE),
    ('{"raw_handle":{"b64":""},"device_id":0,"byte_size":16}', 400, BAD_HANDLE),
    ('{"raw_handle":{"b64":"A"},"device_id":0,"byte_size":16}', 400, BAD_HANDLE),
    (f'{{"raw_handle":{{"b64":"{HANDLE_63}"}},"device_id":0,"byte_size":16}}', 400, BAD_HANDLE),
    ('{"device_id":0,"byte_size":16}', 400, "Shared memory register request has no 'raw_handle' field"),
    ('{"raw_handle":"abc","device_id":0,"byte_size":16}', 500, "attempt to access non-existing object member 'b64'"),
    ('{"raw_handle":{},"device_id":0,"byte_size":16}', 500, "attempt to access non-existing object member 'b64'"),
    ('{"raw_handle":{"b64":5},"device_id":0,"byte_size":16}', 500, "attempt to access JSON non-string as string"),
    ('{"raw_handle":{"b64":"AAAA"},"byte_size":16}', 500, "attempt to access non-existing object member 'device_id'"),
    ('{"raw_handle":{"b64":"!!!"}}', 500, "attempt to access non-existing object member 'byte_size'"),  # first
    (f'{{"raw_handle":{{"b64":"{HANDLE_64}"}},"device_id":"0","byte_size":16}}', 500,
     NOT_UNSIGNED),
    (f'{{"raw_handle":{{"b64":"{HANDLE_64}"}},"device_id":0,"byte_size":-1}}', 500,
     NOT_UNSIGNED),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "error"), CUDA_REGISTER)
def test_cuda_register_checks_its_fields_as_triton(server, body, status, error):
    assert post(server, "/v2/cudasharedmemory/region/c/register", body) == (status, error)


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [  # captured from Triton 2.51 over gRPC: no field is required there, the key is opened as given
        (pb.SystemSharedMemoryRegisterRequest(name="r", key=MISSING_KEY), grpc.StatusCode.INTERNAL,
         f"Unable to open shared memory region: '{MISSING_KEY}'"),
        (pb.SystemSharedMemoryRegisterRequest(name="r", byte_size=16), grpc.StatusCode.INTERNAL,
         "Unable to open shared memory region: ''"),
        (pb.CudaSharedMemoryRegisterRequest(name="c", raw_handle=b"!!!", byte_size=16),
         grpc.StatusCode.INVALID_ARGUMENT, "failed to register shared memory region: invalid args"),
    ],
)  # fmt: skip
def test_grpc_register_answers_as_triton(server, request_, code, message):
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    register = (
        stub.SystemSharedMemoryRegister
        if isinstance(request_, pb.SystemSharedMemoryRegisterRequest)
        else stub.CudaSharedMemoryRegister
    )
    with pytest.raises(grpc.RpcError) as caught:
        register(request_)
    assert (caught.value.code(), caught.value.details()) == (code, message)


# --- repository load -------------------------------------------------------------------------------

PARSE = "failed to parse the request JSON buffer: "
LOAD = [  # body -> (status, error), captured from Triton 2.51 in explicit mode
    ("{bad", 500, PARSE + "Missing a name for object member. at 1"),
    ("  {bad", 500, PARSE + "Missing a name for object member. at 3"),
    ('{"parameters":}', 500, PARSE + "Invalid value. at 14"),
    ('{"a" 1}', 500, PARSE + "Missing a colon after a name of object member. at 5"),
    ('{"a":1 "b":2}', 500, PARSE + "Missing a comma or '}' after an object member. at 7"),
    ("[1,", 500, PARSE + "Invalid value. at 3"),
    ('{"a":1,}', 500, PARSE + "Missing a name for object member. at 7"),
    ("nul", 500, PARSE + "Invalid value. at 3"),
    ("{} x", 500, PARSE + "The document root must not be followed by other values. at 3"),
    ('"abc', 500, PARSE + "Missing a closing quotation mark in string. at 4"),
    ("[1 2]", 500, PARSE + "Missing a comma or ']' after an array element. at 3"),
    ('{"parameters": {"config": 5}}', 500, "attempt to access JSON non-string as string"),
    ('{"parameters": []}', 500, "attempt to get members for non-object"),
    ('{"parameters": "x"}', 500, "attempt to get members for non-object"),
    ("", 200, ""),
    ("[]", 200, ""),
]


@pytest.mark.parametrize(("body", "status", "error"), LOAD)
def test_load_body_answers_as_triton(server, body, status, error):
    assert post(server, "/v2/repository/models/identity/load", body) == (status, error)


FILE_ONLY = base64.b64encode(b"x = 1\n").decode()


@pytest.mark.parametrize("model", ["not_in_repository", "identity"])
def test_file_override_without_config_fails_as_triton(server, model):
    body = f'{{"parameters": {{"file:1/model.py": "{FILE_ONLY}"}}}}'
    expected = f"failed to load '{model}', failed to poll from model repository"
    assert post(server, f"/v2/repository/models/{model}/load", body) == (500, expected)
    # the same for content that is not base64: Triton's decoder does not refuse it
    assert post(server, f"/v2/repository/models/{model}/load", '{"parameters": {"file:1/model.py": "!!!"}}') == (
        500,
        expected,
    )
    client = grpcclient.InferenceServerClient(server.grpc)
    with pytest.raises(InferenceServerException) as caught:
        client.load_model(model, files={"file:1/model.py": b"x = 1\n"})
    assert (caught.value.status(), caught.value.message()) == ("StatusCode.INTERNAL", expected)
