"""--http-restricted-api and --grpc-restricted-protocol on a real server, against Triton 2.51's answers.

The expected answers were captured from the reference server started with one flag per group, each
group with its own header (``h-<group>`` on HTTP, ``g-<group>`` on gRPC), every endpoint called
without headers and then with all of them.
"""

from __future__ import annotations

import shutil
import socket

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import TEST_REPOSITORY
from serverutil import RunningServer, free_port
from tritonclient.utils import InferenceServerException

from tritonlite.frontends import access
from tritonlite.protocol import grpc_service_pb2 as pb
from tritonlite.protocol import grpc_service_pb2_grpc as pb_grpc

HTTP_HEADERS = {f"h-{group}": "v" for group in access.GROUPS}
GRPC_HEADERS = {f"triton-grpc-protocol-g-{group}": "v" for group in access.GROUPS}

# (method, path, body, the group whose header Triton's 403 names; None: not restricted)
HTTP_CALLS = [
    ("GET", "/v2/health/live", None, "health"),
    ("GET", "/v2/health/ready", None, "health"),
    ("GET", "/v2/models/add_sub/ready", None, "health"),
    ("GET", "/v2/models/add_sub/versions/1/ready", None, "health"),
    ("PUT", "/v2/health/live", None, "health"),  # before the method's 405
    ("GET", "/v2", None, "metadata"),
    ("GET", "/v2/models/add_sub", None, "metadata"),
    ("GET", "/v2/models/add_sub/versions/1", None, "metadata"),
    ("POST", "/v2/models/add_sub/infer", b"{}", "inference"),
    ("GET", "/v2/models/add_sub/infer", None, "inference"),
    ("POST", "/v2/models/add_sub/versions/1/infer", b"{}", "inference"),
    ("POST", "/v2/models/nope/infer", b"{}", "inference"),  # before the model is looked up
    ("POST", "/v2/models/add_sub/generate", b"{}", "inference"),
    ("POST", "/v2/models/add_sub/generate_stream", b"{}", "inference"),
    ("GET", "/v2/systemsharedmemory/status", None, "shared-memory"),
    ("POST", "/v2/systemsharedmemory/unregister", None, "shared-memory"),
    ("GET", "/v2/cudasharedmemory/status", None, "shared-memory"),
    ("POST", "/v2/cudasharedmemory/region/x/register", b"{}", "shared-memory"),
    ("GET", "/v2/models/add_sub/config", None, "model-config"),
    ("GET", "/v2/models/add_sub/versions/1/config", None, "model-config"),
    ("DELETE", "/v2/models/add_sub/config", None, "model-config"),
    ("POST", "/v2/repository/index", None, "model-repository"),
    ("GET", "/v2/repository/index", None, "model-repository"),
    ("POST", "/v2/repository/models/add_sub/load", None, "model-repository"),
    ("POST", "/v2/repository/models/nope/unload", None, "model-repository"),
    ("GET", "/v2/models/stats", None, "statistics"),
    ("GET", "/v2/models/add_sub/stats", None, "statistics"),
    ("GET", "/v2/models/add_sub/versions/1/stats", None, "statistics"),
    ("GET", "/v2/trace/setting", None, "trace"),
    ("POST", "/v2/trace/setting", b"{}", "trace"),
    ("GET", "/v2/models/add_sub/trace/setting", None, "trace"),
    ("GET", "/v2/logging", None, "logging"),
    ("POST", "/v2/logging", b"{}", "logging"),
    # tritonlite's own endpoints: the status snapshot, the OpenAI routes
    ("GET", "/status.json", None, "model-repository"),
    ("GET", "/v1/models", None, "model-repository"),
    ("POST", "/v1/chat/completions", b"{}", "inference"),
    ("GET", "/v2/nothing", None, None),
    ("GET", "/v2/models/add_sub/versions/1/trace/setting", None, None),
]

# every RPC with a request Triton refuses for its group (ModelStreamInfer is its own test)
GRPC_CALLS = {
    "ServerLive": (pb.ServerLiveRequest(), "health"),
    "ServerReady": (pb.ServerReadyRequest(), "health"),
    "ModelReady": (pb.ModelReadyRequest(name="add_sub"), "health"),
    "ServerMetadata": (pb.ServerMetadataRequest(), "metadata"),
    "ModelMetadata": (pb.ModelMetadataRequest(name="add_sub"), "metadata"),
    "ModelInfer": (pb.ModelInferRequest(model_name="add_sub"), "inference"),
    "ModelConfig": (pb.ModelConfigRequest(name="add_sub"), "model-config"),
    "ModelStatistics": (pb.ModelStatisticsRequest(name="add_sub"), "statistics"),
    "RepositoryIndex": (pb.RepositoryIndexRequest(), "model-repository"),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest(model_name="add_sub"), "model-repository"),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest(model_name="nope"), "model-repository"),
    "SystemSharedMemoryStatus": (pb.SystemSharedMemoryStatusRequest(), "shared-memory"),
    "SystemSharedMemoryRegister": (pb.SystemSharedMemoryRegisterRequest(name="x"), "shared-memory"),
    "SystemSharedMemoryUnregister": (pb.SystemSharedMemoryUnregisterRequest(), "shared-memory"),
    "CudaSharedMemoryStatus": (pb.CudaSharedMemoryStatusRequest(), "shared-memory"),
    "CudaSharedMemoryRegister": (pb.CudaSharedMemoryRegisterRequest(name="x"), "shared-memory"),
    "CudaSharedMemoryUnregister": (pb.CudaSharedMemoryUnregisterRequest(), "shared-memory"),
    "TraceSetting": (pb.TraceSettingRequest(), "trace"),
    "LogSettings": (pb.LogSettingsRequest(), "logging"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("restricted_repository")
    shutil.copytree(TEST_REPOSITORY / "add_sub", repo / "add_sub")
    flags = [f"--http-restricted-api={group}:h-{group}=v" for group in access.GROUPS]
    flags += [f"--grpc-restricted-protocol={group}:g-{group}=v" for group in access.GROUPS]
    openai_port = free_port()
    running = RunningServer([repo], *flags, f"--openai-port={openai_port}")
    running.openai_port = openai_port
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def refusal(group: str) -> str:
    return f'{{"error":"This API is restricted, expecting header \'h-{group}\'"}}'


@pytest.mark.parametrize(("method", "path", "body", "group"), HTTP_CALLS)
def test_http_call_without_its_header_is_tritons_403(server, method, path, body, group):
    answer = requests.request(method, f"http://{server.http}{path}", data=body, timeout=10)
    if group is None:
        assert answer.status_code == 404
        return
    assert (answer.status_code, answer.text, answer.headers["content-type"]) == (403, refusal(group), "text/plain")


@pytest.mark.parametrize(("method", "path", "body", "group"), [call for call in HTTP_CALLS if call[3]])
def test_http_call_with_its_header_is_served(server, method, path, body, group):
    answer = requests.request(method, f"http://{server.http}{path}", data=body, headers=HTTP_HEADERS, timeout=10)
    assert answer.status_code != 403
    assert "restricted" not in answer.text


def test_http_header_name_matches_in_any_case_and_value_exactly(server):
    url = f"http://{server.http}/v2/health/live"
    assert requests.get(url, headers={"H-Health": "v"}, timeout=10).status_code == 200
    answer = requests.get(url, headers={"h-health": "V"}, timeout=10)
    assert (answer.status_code, answer.text) == (403, refusal("health"))


def test_http_first_header_of_the_name_decides(server):
    def live(*values: bytes) -> bytes:
        head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + b"".join(b"h-health: " + v + b"\r\n" for v in values)
        with socket.create_connection((server.http.split(":")[0], server.http_port), timeout=10) as conn:
            conn.sendall(head + b"Connection: close\r\n\r\n")
            return b"".join(iter(lambda: conn.recv(65536), b""))

    assert live(b"x", b"v").startswith(b"HTTP/1.1 403 ")
    assert live(b"v", b"x").startswith(b"HTTP/1.1 200 ")


def _plain_infer(server, extra: bytes = b"") -> bytes:
    """One whole infer request in one write: with only plain headers it takes the plain-request path."""
    body = (
        b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[4],"data":[1,2,3,4]},'
        b'{"name":"INPUT1","datatype":"FP32","shape":[4],"data":[1,1,1,1]}]}'
    )
    head = b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\n" + extra
    request = head + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as conn:
        conn.sendall(request)
        return b"".join(iter(lambda: conn.recv(65536), b""))


def test_http_infer_is_checked_on_both_request_paths(server):
    refused = _plain_infer(server)  # plain path
    assert refused.startswith(b"HTTP/1.1 403 ")
    assert refused.endswith(refusal("inference").encode())
    served = _plain_infer(server, b"h-inference: v\r\n")  # the plain path reads this header too
    assert served.startswith(b"HTTP/1.1 200 ")
    assert b'"OUTPUT0"' in served


def test_tritonclient_http_with_and_without_the_header(server):
    client = httpclient.InferenceServerClient(server.http)
    try:
        inputs = [httpclient.InferInput(name, [4], "FP32") for name in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.ones(4, dtype=np.float32))
        with pytest.raises(InferenceServerException, match="This API is restricted, expecting header 'h-inference'"):
            client.infer("add_sub", inputs)
        result = client.infer("add_sub", inputs, headers={"h-inference": "v"})
        assert result.as_numpy("OUTPUT0").tolist() == [2, 2, 2, 2]
        assert client.is_server_live(headers={"h-health": "v"})
    finally:
        client.close()


@pytest.mark.parametrize("name", GRPC_CALLS)
def test_grpc_call_without_its_header_is_tritons_unavailable(stub, name):
    request, group = GRPC_CALLS[name]
    with pytest.raises(grpc.RpcError) as raised:
        getattr(stub, name)(request, timeout=10)
    expected = f"This protocol is restricted, expecting header 'triton-grpc-protocol-g-{group}'"
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.UNAVAILABLE, expected)


@pytest.mark.parametrize("name", GRPC_CALLS)
def test_grpc_call_with_its_header_is_served(stub, name):
    request, _ = GRPC_CALLS[name]
    try:
        getattr(stub, name)(request, metadata=list(GRPC_HEADERS.items()), timeout=10)
    except grpc.RpcError as error:  # an answer of the RPC itself (no inputs, no such region...)
        assert "restricted" not in (error.details() or "")


def test_grpc_header_value_is_exact_and_the_first_one_decides(stub):
    key = "triton-grpc-protocol-g-health"
    for metadata in ([(key, "V")], [(key, "x"), (key, "v")], [("g-health", "v")]):
        with pytest.raises(grpc.RpcError) as raised:
            stub.ServerLive(pb.ServerLiveRequest(), metadata=metadata, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stub.ServerLive(pb.ServerLiveRequest(), metadata=[(key, "v"), (key, "x")], timeout=10).live


def test_grpc_stream_without_its_header_ends_before_reading(stub):
    requests_sent = iter([pb.ModelInferRequest(model_name="add_sub")])
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.ModelStreamInfer(requests_sent, timeout=10))
    expected = "This protocol is restricted, expecting header 'triton-grpc-protocol-g-inference'"
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.UNAVAILABLE, expected)


def test_tritonclient_grpc_stream_and_infer_with_the_header(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    headers = {"triton-grpc-protocol-g-inference": "v"}
    try:
        inputs = [grpcclient.InferInput(name, [4], "FP32") for name in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.arange(4, dtype=np.float32))
        assert client.infer("add_sub", inputs, headers=headers).as_numpy("OUTPUT1").tolist() == [0, 0, 0, 0]
        results = []
        client.start_stream(lambda result, error: results.append((result, error)), headers=headers)
        client.async_stream_infer("add_sub", inputs)
        client.stop_stream()
        [(result, error)] = results
        assert error is None
        assert result.as_numpy("OUTPUT0").tolist() == [0, 2, 4, 6]
        with pytest.raises(InferenceServerException, match="This protocol is restricted"):
            client.is_server_live()
    finally:
        client.close()


def test_the_openai_port_follows_the_http_restrictions(server):
    port = server.openai_port
    answer = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}, timeout=10)
    assert (answer.status_code, answer.text) == (403, refusal("inference"))
    answer = requests.get(f"http://127.0.0.1:{port}/v1/models", headers=HTTP_HEADERS, timeout=10)
    assert answer.status_code == 200


def test_the_http_restriction_does_not_touch_grpc_headers_and_back(server, stub):
    # each frontend reads its own flag: HTTP headers open no gRPC group, gRPC metadata no HTTP group
    with pytest.raises(grpc.RpcError):
        stub.ServerLive(pb.ServerLiveRequest(), metadata=[("h-health", "v")], timeout=10)
    url = f"http://{server.http}/v2/health/live"
    assert requests.get(url, headers={"triton-grpc-protocol-g-health": "v"}, timeout=10).status_code == 403
