"""The HTTP fast lane (frontends.http.fast_lane): which requests it takes, and that what it answers,
in what order and with what statistics, is what the regular path does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from tritonlite.frontends.http.fast_lane import parse_head

# the head perf_analyzer (libcurl) sends, byte for byte
PERF_HEAD = (
    b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: libcurl-agent/1.0\r\n"
    b"Accept: */*\r\nInference-Header-Content-Length: 180\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 2228"
)


def test_perf_analyzers_head_is_taken():
    route = parse_head(PERF_HEAD)
    assert (route.model, route.version, route.content_length, route.header_length) == ("mlp", "", 2228, 180)


def test_a_versioned_path_and_keep_alive_are_taken():
    head = b"POST /v2/models/m/versions/3/infer HTTP/1.1\r\nConnection: Keep-Alive\r\n" + PERF_HEAD.split(b"\r\n", 1)[1]
    route = parse_head(head)
    assert (route.model, route.version) == ("m", "3")


@pytest.mark.parametrize(
    "change",
    [
        (b"POST /v2/models/mlp/infer HTTP/1.1", b"GET /v2/models/mlp/infer HTTP/1.1"),
        (b"HTTP/1.1", b"HTTP/1.0"),
        (b"/mlp/infer", b"/mlp/infer?x=1"),
        (b"/mlp/infer", b"/ml%70/infer"),
        (b"/mlp/infer", b"/mlp/ready"),
        (b"/mlp/infer", b"/mlp/versions/x/infer"),
        (b"Accept: */*", b"Accept-Encoding: gzip"),
        (b"Accept: */*", b"Expect: 100-continue"),
        (b"Accept: */*", b"Transfer-Encoding: chunked"),
        (b"Accept: */*", b"Content-Encoding: gzip"),
        (b"Accept: */*", b"Connection: close"),
        (b"Accept: */*", b"Content-Length: 2228"),  # twice
        (b"Accept: */*", b"Accept */*"),
        (b"Accept: */*", b"Accept : */*"),
        (b"Accept: */*", b" Accept: */*"),
        (b"Accept: */*", b"Accept: \x01"),
        (b"Content-Length: 2228", b"Content-Length: 22x8"),
        (b"Content-Length: 2228", b"Content-Length: -1"),
        (b"Content-Length: 2228", b"Content-Length: 100"),  # shorter than the JSON header
        (b"Inference-Header-Content-Length: 180", b"Inference-Header-Content-Length: 0"),
        (b"Inference-Header-Content-Length: 180", b"Inference-Header-Content-Length: abc"),
        (b"Inference-Header-Content-Length: 180", b"X-Other: 180"),
    ],
)
def test_anything_else_is_left_to_the_regular_path(change):
    old, new = change
    assert old in PERF_HEAD
    assert parse_head(PERF_HEAD.replace(old, new, 1)) is None


def test_a_head_without_content_length_is_left():
    assert parse_head(PERF_HEAD.rsplit(b"\r\n", 1)[0]) is None


# -- a server in this process: the lane's counter and the model's statistics are visible ---------

MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if x[0, 0] < 0:
                answers.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("negative input")))
            else:
                answers.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x * 2)]))
        return answers
"""


def write_model(root: Path, name: str, batching: str) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(MODEL)
    (folder / "config.pbtxt").write_text(
        f'backend: "python"\nmax_batch_size: 4\n{batching}\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]\n'
    )


@pytest.fixture()
def repository(tmp_path) -> Path:
    root = tmp_path / "repo"
    write_model(root, "fast", "dynamic_batching { }")
    # single requests wait 400 ms for a batch of 4: time to act while an answer is due
    write_model(root, "held", "dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 400000 }")
    write_model(
        root, "bounded",
        "dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 400000 "
        "default_queue_policy { max_queue_size: 1 } }",
    )  # fmt: skip
    write_model(root, "direct", "")
    write_model(root, "cached", "dynamic_batching { }\nresponse_cache { enable: true }")
    return root


def request(model: str, values, close: bool = False) -> bytes:
    header = json.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    body = header + np.asarray(values, np.float32).reshape(1, 4).tobytes()
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: test\r\n{connection}"
        f"Inference-Header-Content-Length: {len(header)}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").strip().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return int(status_line.split()[1]), headers, body


def output(headers: dict[str, str], body: bytes) -> np.ndarray:
    json_length = int(headers["inference-header-content-length"])
    return np.frombuffer(body[json_length:], np.float32)


@contextlib.asynccontextmanager
async def served(repository: Path):
    from tritonlite.engine import Engine, EngineOptions
    from tritonlite.frontends.http.app import HttpFrontend
    from tritonlite.server import _start_uvicorn

    engine = Engine(EngineOptions(repositories=[repository], cache_bytes=1 << 20))
    await engine.start()
    app = HttpFrontend(engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, task = await _start_uvicorn(app, "127.0.0.1", port, "HTTP")
    try:
        yield app, engine, server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await engine.stop()


async def header_known(port: int, model: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose first request to ``model`` ([1, 1, 1, 1]) took the regular path and was
    answered: its header is in the cache and passed validation, so the next one may take the lane."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(model, [1, 1, 1, 1]))
    await read_answer(reader)
    return reader, writer


async def one_waiting_in_the_lane(app, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose second request to "held" ([2, 2, 2, 2]) went through the lane and waits
    in the queue (400 ms); the first one, answered, took the regular path and filled the cache."""
    reader, writer = await header_known(port, "held")
    writer.write(request("held", [2, 2, 2, 2]))
    await asyncio.sleep(0.1)
    assert app.fast_lane.taken == 1
    return reader, writer


def stats(engine, name: str):
    return engine.models.get(name, "").stats


def run(coro) -> None:
    asyncio.run(coro)


def test_repeated_requests_go_through_the_lane_and_are_answered_as_the_regular_path_does(repository):
    async def go():
        async with served(repository) as (app, engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for values in ([1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]):
                writer.write(request("fast", values))
                answers.append(await read_answer(reader))
            writer.close()
            lane = app.fast_lane
            # the first request fills the header cache and passes validation on the regular path
            assert lane.taken == 2
            assert [a[0] for a in answers] == [200, 200, 200]
            assert answers[0] == answers[2]  # the same request: byte for byte the same answer
            assert output(*answers[1][1:]).tolist() == [10, 12, 14, 16]
            assert set(answers[1][1]) == {"content-type", "inference-header-content-length", "content-length"}
            counters = stats(engine, "fast")
            assert counters.success.count == 3 and counters.fail.count == 0 and counters.pending == 0

    run(go())


def test_tritonclient_requests_go_through_the_lane_with_exact_answers(repository):
    import tritonclient.http as httpclient

    def infer_many(port: int) -> list[tuple[np.ndarray, np.ndarray]]:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        rng = np.random.default_rng(7)
        pairs = []
        for _ in range(20):
            x = rng.standard_normal((1, 4)).astype(np.float32) + 5
            given = httpclient.InferInput("INPUT0", [1, 4], "FP32")
            given.set_data_from_numpy(x, binary_data=True)
            wanted = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
            pairs.append((x, client.infer("fast", [given], outputs=[wanted]).as_numpy("OUTPUT0")))
        client.close()
        return pairs

    async def go():
        async with served(repository) as (app, _, _, port):
            pairs = await asyncio.to_thread(infer_many, port)
            assert all(np.array_equal(y, x * 2) for x, y in pairs)
            assert app.fast_lane.taken == 19  # all but the first, which fills the header cache

    run(go())


def test_bytes_that_come_while_an_answer_is_due_are_read_after_it(repository):
    async def go():
        async with served(repository) as (app, _, _, port):
            reader, writer = await one_waiting_in_the_lane(app, port)
            writer.write(request("held", [3, 3, 3, 3]) + b"GET /v2/models/held/ready HTTP/1.1\r\nHost: t\r\n\r\n")
            first, second, ready = [await read_answer(reader) for _ in range(3)]
            writer.close()
            assert output(*first[1:]).tolist() == [4, 4, 4, 4]
            assert output(*second[1:]).tolist() == [6, 6, 6, 6]
            assert ready[0] == 200

    run(go())


def test_a_client_that_goes_away_takes_its_request_out_of_the_queue(repository):
    async def go():
        async with served(repository) as (app, engine, _, port):
            reader, writer = await one_waiting_in_the_lane(app, port)
            writer.close()
            await asyncio.sleep(0.6)  # past the queue delay: the batch would have run by now
            counters = stats(engine, "held")
            assert counters.execution_count == 1  # only the first request ran
            assert counters.failures["CANCELED"] == 1 and counters.pending == 0

    run(go())


def test_a_backend_error_is_answered_as_the_regular_path_answers_it(repository):
    async def go():
        async with served(repository) as (app, _, _, port):
            reader, writer = await header_known(port, "fast")
            failing = request("fast", [-1, 1, 1, 1])
            writer.write(failing[:40])  # in two pieces: the lane leaves it to httptools
            await asyncio.sleep(0.05)
            writer.write(failing[40:])
            regular = await read_answer(reader)
            assert app.fast_lane.taken == 0
            writer.write(failing)
            through_lane = await read_answer(reader)
            writer.close()
            assert app.fast_lane.taken == 1
            assert regular == through_lane
            assert regular[0] == 500 and json.loads(regular[2]) == {"error": "negative input"}

    run(go())


def test_a_bug_while_answering_is_a_500_and_the_connection_serves_on(repository, monkeypatch):
    from tritonlite.frontends.http.header_cache import DecodedHeader

    async def go():
        async with served(repository) as (app, _, _, port):
            reader, writer = await header_known(port, "fast")
            encode = DecodedHeader.encode

            def broken(self, response, request):
                raise RuntimeError("boom")

            monkeypatch.setattr(DecodedHeader, "encode", broken)
            writer.write(request("fast", [2, 2, 2, 2]))
            status, headers, body = await read_answer(reader)
            assert app.fast_lane.taken == 1
            assert status == 500 and headers["content-type"] == "application/json"
            assert json.loads(body) == {"error": "internal error: RuntimeError: boom"}
            monkeypatch.setattr(DecodedHeader, "encode", encode)
            writer.write(request("fast", [3, 3, 3, 3]))
            status, headers, body = await read_answer(reader)
            writer.close()
            assert status == 200 and output(headers, body).tolist() == [6, 6, 6, 6]
            assert app.fast_lane.taken == 2

    run(go())


def test_a_full_queue_is_refused_with_tritons_error(repository):
    async def go():
        async with served(repository) as (app, engine, _, port):
            first = await header_known(port, "bounded")
            second = await asyncio.open_connection("127.0.0.1", port)
            first[1].write(request("bounded", [2, 2, 2, 2]))  # waits in the queue (size 1)
            await asyncio.sleep(0.1)
            second[1].write(request("bounded", [3, 3, 3, 3]))
            status, _, body = await read_answer(second[0])
            assert status == 503
            assert json.loads(body) == {"error": "[request id: <id_unknown>] Exceeds maximum queue size"}
            assert (await read_answer(first[0]))[0] == 200
            assert app.fast_lane.taken == 2
            assert stats(engine, "bounded").failures["REJECTED"] == 1
            first[1].close()
            second[1].close()

    run(go())


@pytest.mark.parametrize("model", ["direct", "cached"])
def test_models_without_a_batching_queue_or_with_a_response_cache_are_left_to_the_regular_path(repository, model):
    async def go():
        async with served(repository) as (app, engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                writer.write(request(model, [1, 2, 3, 4]))
                status, headers, body = await read_answer(reader)
                assert status == 200 and output(headers, body).tolist() == [2, 4, 6, 8]
            writer.close()
            assert app.fast_lane.taken == 0
            if model == "cached":
                assert stats(engine, model).cache_hit.count == 2  # the cache answered, as it should

    run(go())


def test_connection_close_is_left_to_the_regular_path(repository):
    async def go():
        async with served(repository) as (app, _, _, port):
            for _ in range(2):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request("fast", [1, 2, 3, 4], close=True))
                status, headers, _ = await read_answer(reader)
                assert status == 200 and headers["connection"] == "close"
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()
            assert app.fast_lane.taken == 0

    run(go())


def test_a_shutdown_while_an_answer_is_due_writes_it_and_then_closes(repository):
    async def go():
        async with served(repository) as (app, _, server, port):
            reader, writer = await one_waiting_in_the_lane(app, port)
            for connection in list(server.server_state.connections):
                connection.shutdown()
            status, headers, body = await read_answer(reader)
            assert status == 200 and output(headers, body).tolist() == [4, 4, 4, 4]
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(go())


def test_a_client_that_does_not_read_its_answers_gets_the_regular_paths_back_pressure(repository):
    async def go():
        async with served(repository) as (app, _, server, port):
            reader, writer = await header_known(port, "fast")
            [protocol] = server.server_state.connections
            protocol.flow.pause_writing()  # as the transport does when its buffer passes the high mark
            writer.write(request("fast", [2, 2, 2, 2]))
            await asyncio.sleep(0.2)
            assert app.fast_lane.taken == 0
            assert not reader._buffer  # the regular path holds the answer until writing resumes
            protocol.flow.resume_writing()
            status, headers, body = await read_answer(reader)
            assert status == 200 and output(headers, body).tolist() == [4, 4, 4, 4]
            writer.close()

    run(go())


def test_the_lane_can_be_turned_off(repository, monkeypatch):
    monkeypatch.setenv("TRITONLITE_HTTP_FAST", "0")

    async def go():
        async with served(repository) as (app, _, _, port):
            assert app.fast_lane is None
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):
                writer.write(request("fast", [1, 2, 3, 4]))
                assert (await read_answer(reader))[0] == 200
            writer.close()

    run(go())
