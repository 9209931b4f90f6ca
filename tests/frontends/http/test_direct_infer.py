"""Infer requests answered by the cycle directly (frontends.http.cycle), checked on the wire.

The direct path keeps uvicorn's HTTP handling: Expect: 100-continue, chunked request bodies,
pipelined requests, Connection: close, and the --http-max-input-size limit; and it answers
exactly as the ASGI path does (TRITONLITE_HTTP_DIRECT=0).
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
from conftest import EXAMPLES
from serverutil import RunningServer

INFER = json.dumps(
    {"id": "r1", "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [10, 20, 30, 40]},
    ]}
).encode()  # fmt: skip


def post(body: bytes, *headers: str, path: str = "/v2/models/add_sub/infer") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from the socket (``buffer`` keeps what was read beyond it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def exchange(address: str, data: bytes, responses: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        buffer = bytearray()
        return [read_response(sock, buffer) for _ in range(responses)]


def outputs(body: bytes) -> dict[str, list]:
    return {o["name"]: o["data"] for o in json.loads(body)["outputs"]}


def test_json_infer(server):
    [(status, headers, body)] = exchange(server.http, post(INFER))
    assert status == 200 and headers["content-type"] == "application/json"
    assert outputs(body) == {"OUTPUT0": [11.0, 22.0, 33.0, 44.0], "OUTPUT1": [-9.0, -18.0, -27.0, -36.0]}
    assert json.loads(body)["id"] == "r1"


def test_answers_carry_the_headers_triton_sends_and_no_others(server):
    # Triton 2.51 (curl -i): "Content-Type" and "Content-Length" only; no Server, no Date
    metadata = b"GET /v2/models/add_sub HTTP/1.1\r\nHost: test\r\n\r\n"
    infer, meta = exchange(server.http, post(INFER) + metadata, responses=2)
    assert set(infer[1]) == {"content-type", "content-length"}
    assert set(meta[1]) == {"content-type", "content-length"}


def test_expect_100_continue_gets_continue_then_the_answer(server):
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(post(b"", "Expect: 100-continue", f"Content-Length: {len(INFER)}"))
        buffer = bytearray()
        status, _, _ = read_response(sock, buffer)
        assert status == 100
        sock.sendall(INFER)
        status, _, body = read_response(sock, buffer)
    assert status == 200 and outputs(body)["OUTPUT0"] == [11.0, 22.0, 33.0, 44.0]


def test_chunked_request_body(server):
    half = len(INFER) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (INFER[:half], INFER[half:])) + b"0\r\n\r\n"
    [(status, _, body)] = exchange(server.http, post(chunks, "Transfer-Encoding: chunked"))
    assert status == 200 and outputs(body)["OUTPUT1"] == [-9.0, -18.0, -27.0, -36.0]


def test_pipelined_requests_are_answered_in_order(server):
    second = INFER.replace(b'"r1"', b'"r2"')
    metadata = b"GET /v2/models/add_sub HTTP/1.1\r\nHost: test\r\n\r\n"
    answers = exchange(server.http, post(INFER) + metadata + post(second), responses=3)
    assert [a[0] for a in answers] == [200, 200, 200]
    assert json.loads(answers[0][2])["id"] == "r1"
    assert json.loads(answers[1][2])["name"] == "add_sub"
    assert json.loads(answers[2][2])["id"] == "r2"


def test_connection_close_closes_after_the_answer(server):
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(post(INFER, "Connection: close"))
        buffer = bytearray()
        status, headers, _ = read_response(sock, buffer)
        assert status == 200 and headers.get("connection") == "close"
        assert sock.recv(100) == b""  # the server closed its side


def test_query_string_is_ignored_and_http_1_0_closes(server):
    [(status, _, body)] = exchange(server.http, post(INFER, path="/v2/models/add_sub/infer?x=1"))
    assert status == 200 and outputs(body)["OUTPUT0"] == [11.0, 22.0, 33.0, 44.0]
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(post(INFER).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        status, headers, _ = read_response(sock, bytearray())
        assert status == 200 and headers.get("connection") == "close"
        assert sock.recv(100) == b""


def test_an_escaped_model_name_is_unquoted(server):
    [(status, _, body)] = exchange(server.http, post(INFER, path="/v2/models/add%5Fsub/infer"))
    assert status == 200 and json.loads(body)["model_name"] == "add_sub"


def test_errors_answer_in_tritons_format(server):
    [(status, headers, body)] = exchange(server.http, post(b'{"inputs": 5}'))
    assert status == 500 and headers["content-type"] == "application/json"
    assert "error" in json.loads(body)
    [(status, _, body)] = exchange(server.http, post(INFER, path="/v2/models/no_such_model/infer"))
    assert status == 404 and "no_such_model" in json.loads(body)["error"]


def test_binary_answer_and_version_path(server):
    header = json.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                    {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    data = np.arange(4, dtype=np.float32).tobytes() + np.ones(4, np.float32).tobytes()
    request = post(header + data, f"Inference-Header-Content-Length: {len(header)}",
                   path="/v2/models/add_sub/versions/1/infer")  # fmt: skip
    [(status, headers, body)] = exchange(server.http, request)
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    json_length = int(headers["inference-header-content-length"])
    assert np.frombuffer(body[json_length:], np.float32).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_a_body_that_arrives_in_pieces_is_joined_in_order(server):
    header = json.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                    {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}}]}
    ).encode()  # fmt: skip
    data = header + np.array([1, 2, 3, 4], np.float32).tobytes() + np.array([10, 20, 30, 40], np.float32).tobytes()
    request = post(data, f"Inference-Header-Content-Length: {len(header)}")
    head_end = request.index(b"\r\n\r\n") + 4
    pieces = [request[:head_end], data[:7], data[7 : len(header) + 5], data[len(header) + 5 :]]
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index, piece in enumerate(pieces):
            sock.sendall(piece)
            if index < len(pieces) - 1:
                time.sleep(0.05)  # each piece reaches the server on its own
        status, headers, body = read_response(sock, bytearray())
        # the same connection goes on with a request in one piece
        sock.sendall(request)
        again = read_response(sock, bytearray())
    assert status == 200 and again[0] == 200 and headers["content-type"] == "application/json"
    assert outputs(body) == {"OUTPUT0": [11.0, 22.0, 33.0, 44.0], "OUTPUT1": [-9.0, -18.0, -27.0, -36.0]}
    assert again[2] == body


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    running = RunningServer([EXAMPLES], "--http-max-input-size=100")
    yield running
    running.stop()


def test_body_over_the_input_limit_is_refused(small_limit_server):
    [(status, _, body)] = exchange(small_limit_server.http, post(INFER))
    assert status == 400
    assert "exceeds the maximum allowed value of 100 bytes" in json.loads(body)["error"]


def test_a_body_bigger_than_uvicorns_read_buffer_arrives_whole(server):
    import tritonclient.http as httpclient

    data = np.random.default_rng(5).standard_normal((1, 5_000_000)).astype(np.float32)  # 20 MB
    client = httpclient.InferenceServerClient(server.http)
    tensor = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=True)
    result = client.infer("identity", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
