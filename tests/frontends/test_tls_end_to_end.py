"""gRPC over TLS and mutual TLS (Triton's --grpc-use-ssl* flags) and HTTPS on the HTTP port
(tritonlite's --http-ssl-* flags), with certificates made for the test and tritonclient as the client."""

from __future__ import annotations

import shutil
import socket
import ssl
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import TEST_REPOSITORY
from serverutil import RunningServer
from tls_material import TlsFiles, make_tls_files
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("tls_repository")
    shutil.copytree(TEST_REPOSITORY / "add_sub", repo / "add_sub")
    return repo


def start(repository, *flags: str) -> RunningServer:
    """A server whose HTTP port may speak HTTPS: waits for its gRPC port instead of plain HTTP."""
    server = RunningServer([repository], "--allow-metrics=false", *flags, wait_ready=False)
    deadline = time.monotonic() + 60
    while "Started HTTPService" not in server.log():
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tritonlite-server did not start:\n{server.log()}")
        time.sleep(0.1)
    return server


def grpc_infer(client: grpcclient.InferenceServerClient) -> list[float]:
    inputs = [grpcclient.InferInput(name, [4], "FP32") for name in ("INPUT0", "INPUT1")]
    for tensor in inputs:
        tensor.set_data_from_numpy(np.ones(4, dtype=np.float32))
    return client.infer("add_sub", inputs).as_numpy("OUTPUT0").tolist()


@pytest.fixture(scope="module")
def grpc_tls_server(repository, tls):
    server = start(repository, "--grpc-use-ssl=true", f"--grpc-server-cert={tls.server_cert}",
                   f"--grpc-server-key={tls.server_key}")  # fmt: skip
    yield server
    server.stop()


def test_grpc_tls_serves_a_client_that_trusts_the_server(grpc_tls_server, tls):
    client = grpcclient.InferenceServerClient(grpc_tls_server.grpc, ssl=True, root_certificates=str(tls.ca))
    try:
        assert client.is_server_live()
        assert grpc_infer(client) == [2, 2, 2, 2]
    finally:
        client.close()


def test_grpc_tls_refuses_a_plaintext_client(grpc_tls_server):
    client = grpcclient.InferenceServerClient(grpc_tls_server.grpc)
    try:
        with pytest.raises(InferenceServerException):
            client.is_server_live(client_timeout=5)
    finally:
        client.close()


def test_grpc_tls_leaves_http_plain(grpc_tls_server):
    assert requests.get(f"http://{grpc_tls_server.http}/v2/health/live", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def grpc_mutual_server(repository, tls):
    server = start(repository, "--grpc-use-ssl-mutual=true", f"--grpc-server-cert={tls.server_cert}",
                   f"--grpc-server-key={tls.server_key}", f"--grpc-root-cert={tls.ca}")  # fmt: skip
    yield server
    server.stop()


def test_grpc_mutual_tls_serves_a_client_with_a_certificate(grpc_mutual_server, tls):
    client = grpcclient.InferenceServerClient(
        grpc_mutual_server.grpc, ssl=True, root_certificates=str(tls.ca), private_key=str(tls.client_key),
        certificate_chain=str(tls.client_cert),
    )  # fmt: skip
    try:
        assert grpc_infer(client) == [2, 2, 2, 2]
    finally:
        client.close()


def test_grpc_mutual_tls_refuses_a_client_without_a_certificate(grpc_mutual_server, tls):
    client = grpcclient.InferenceServerClient(grpc_mutual_server.grpc, ssl=True, root_certificates=str(tls.ca))
    try:
        with pytest.raises(InferenceServerException):
            client.is_server_live(client_timeout=5)
    finally:
        client.close()


@pytest.fixture(scope="module")
def https_server(repository, tls):
    server = start(repository, f"--http-ssl-certfile={tls.server_cert}", f"--http-ssl-keyfile={tls.server_key}")
    yield server
    server.stop()


def test_https_serves_tritonclient_http(https_server, tls):
    client = httpclient.InferenceServerClient(https_server.http, ssl=True, ssl_options={"ca_certs": str(tls.ca)})
    try:
        assert client.is_server_live()
        inputs = [httpclient.InferInput(name, [4], "FP32") for name in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.full(4, 3, dtype=np.float32))
        result = client.infer("add_sub", inputs)
        assert result.as_numpy("OUTPUT0").tolist() == [6, 6, 6, 6]
        assert client.get_model_metadata("add_sub")["name"] == "add_sub"
    finally:
        client.close()


def test_https_port_speaks_no_plain_http(https_server, tls):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{https_server.http}/v2/health/live", timeout=10)
    answer = requests.get(f"https://{https_server.http}/v2/health/live", verify=str(tls.ca), timeout=10)
    assert answer.status_code == 200


def test_https_server_stops_cleanly_beside_an_idle_keep_alive_client(repository, tls):
    server = start(repository, f"--http-ssl-certfile={tls.server_cert}", f"--http-ssl-keyfile={tls.server_key}")
    context = ssl.create_default_context(cafile=str(tls.ca))
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(1024).startswith(b"HTTP/1.1 200 ")
            # the client keeps the connection and reads no more: SIGTERM still ends the server (not killed)
            assert server.stop() == 0


def test_https_with_ca_certs_requires_a_client_certificate(repository, tls):
    server = start(repository, f"--http-ssl-certfile={tls.server_cert}", f"--http-ssl-keyfile={tls.server_key}",
                   f"--http-ssl-ca-certs={tls.ca}")  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(tls.ca))
        # a client without a certificate: the server's alert ends the connection (closed here, at once)
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as conn:
                try:
                    conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                    answer = conn.recv(1024)
                except (ssl.SSLError, ConnectionError):  # the alert, or the connection reset
                    answer = b""
                assert answer == b""  # no HTTP answer
        url = f"https://{server.http}/v2/health/live"
        with requests.get(url, verify=str(tls.ca), cert=(str(tls.client_cert), str(tls.client_key)), timeout=10) as got:
            assert got.status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--grpc-use-ssl=true"],
         "failed to start GRPCInferenceService at 127.0.0.1:{grpc}: cannot read --grpc-server-cert ''"),
        (["--grpc-use-ssl=true", "--grpc-server-cert={server_cert}", "--grpc-server-key=/nonexistent.key"],
         "cannot read --grpc-server-key '/nonexistent.key': No such file or directory"),
        (["--grpc-use-ssl=true", "--grpc-server-cert={ca}", "--grpc-server-key={server_key}"],
         "--grpc-server-cert '{ca}' and --grpc-server-key '{server_key}' are no PEM certificate and its key"),
        (["--grpc-use-ssl-mutual=true", "--grpc-server-cert={server_cert}", "--grpc-server-key={server_key}"],
         "--grpc-use-ssl-mutual needs --grpc-root-cert"),
        (["--http-ssl-certfile={server_key}"], "failed to start HTTPService: --http-ssl-certfile"),
        (["--http-ssl-keyfile={server_key}"], "--http-ssl-keyfile and --http-ssl-ca-certs need --http-ssl-certfile"),
    ],
)  # fmt: skip
def test_bad_tls_files_stop_the_server_with_a_message(repository, tls, flags, message):
    files = {"ca": tls.ca, "server_cert": tls.server_cert, "server_key": tls.server_key}
    server = RunningServer([repository], *(flag.format(**files) for flag in flags), wait_ready=False)
    try:
        assert server.process.wait(60) == 1
        assert message.format(grpc=server.grpc_port, **files) in server.log()
    finally:
        server.stop()
