"""HTTP and gRPC endpoints on an in-process server (KServeHttp, KServeGrpc as in tritonfrontend):
real tritonclient calls reach the same engine as in-process calls; stop closes them."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from inprocess_models import build_repository
from serverutil import free_port

import tritonlite

A = np.array([1, 2, 3, 4], dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = tritonlite.Server(model_repository=build_repository(tmp_path_factory.mktemp("frontends"))).start()
    yield running
    running.stop()


def http_add_sub(port: int) -> list[float]:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    for tensor in inputs:
        tensor.set_data_from_numpy(A)
    return client.infer("add_sub", inputs).as_numpy("OUTPUT0").tolist()


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_http_endpoint_beside_in_process_calls(server):
    port = free_port()
    with tritonlite.KServeHttp(server, tritonlite.KServeHttp.Options(address="127.0.0.1", port=port)):
        assert http_add_sub(port) == [2, 4, 6, 8]
        assert next(server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": A})).final
        stats = server.model("add_sub").statistics()["model_stats"][0]
        assert stats["inference_count"] >= 2  # one engine behind both
    assert refused(port)


def test_grpc_endpoint_streams_a_decoupled_model(server):
    port = free_port()
    service = tritonlite.KServeGrpc(server, tritonlite.KServeGrpc.Options(address="127.0.0.1", port=port))
    service.start()
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_model_ready("repeat_decoupled")
        results = []
        client.start_stream(callback=lambda result, error: results.append((result, error)))
        values = grpcclient.InferInput("IN", [2], "INT32")
        values.set_data_from_numpy(np.array([5, 6], np.int32))
        client.async_stream_infer("repeat_decoupled", [values])
        client.stop_stream()
        assert [result.as_numpy("OUT").tolist() for result, _ in results] == [[5], [6]]
        client.close()
    finally:
        service.stop()
    assert refused(port)


def test_a_port_in_use_is_refused(server):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(tritonlite.UnavailableError, match=f"failed to start HTTPService at 127.0.0.1:{port}"):
            tritonlite.KServeHttp(server, tritonlite.KServeHttp.Options(address="127.0.0.1", port=port)).start()
    assert next(server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": A})).final


def test_stopping_the_server_closes_its_endpoints(tmp_path):
    port = free_port()
    server = tritonlite.Server(model_repository=build_repository(tmp_path)).start()
    tritonlite.KServeHttp(server, tritonlite.KServeHttp.Options(address="127.0.0.1", port=port)).start()
    assert http_add_sub(port) == [2, 4, 6, 8]
    server.stop()
    assert refused(port)
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server not started"):
        tritonlite.KServeHttp(server)


def test_import_tritonlite_stays_light():
    heavy = "('numpy', 'tritonlite.engine', 'uvicorn')"
    code = f"import sys, tritonlite; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_every_in_process_name_is_exported():
    import tritonlite.inprocess

    assert tritonlite._INPROCESS == set(tritonlite.inprocess.__all__)
    assert all(getattr(tritonlite, name) is getattr(tritonlite.inprocess, name) for name in tritonlite._INPROCESS)
    with pytest.raises(AttributeError):
        tritonlite.NoSuchName  # noqa: B018
