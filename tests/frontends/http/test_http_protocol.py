"""frontends.http.protocol and exchange: infer served by one exchange per request on uvicorn's
connections, whether httptools or the plain-request reader read it; order, disconnects,
keep-alive, back-pressure and shutdown. A server runs in this process so that the reader's
counter and the models' statistics can be read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from tritonlite.frontends.http.exchange import InferEndpoint
from tritonlite.frontends.http.protocol import HttpConfig
from tritonlite.frontends.http.routes import build_api
from tritonlite.server import uvicorn_options

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


def request(model: str, values, close: bool = False, path: str | None = None) -> bytes:
    header = json.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    body = header + np.asarray(values, np.float32).reshape(1, 4).tobytes()
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST {path or f'/v2/models/{model}/infer'} HTTP/1.1\r\nHost: test\r\n{connection}"
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
async def served(repository: Path, keep_alive: float = 75):
    from tritonlite.engine import Engine, EngineOptions
    from tritonlite.server import _start_uvicorn

    engine = Engine(EngineOptions(repositories=[repository], cache_bytes=1 << 20))
    await engine.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = uvicorn_options("127.0.0.1", port)
    options["timeout_keep_alive"] = keep_alive
    config = HttpConfig(build_api(engine), InferEndpoint(engine), **options)
    server, task = await _start_uvicorn(config, "HTTP")
    try:
        yield config.plain_requests, engine, server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await engine.stop()


async def in_pieces(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` in two reads' worth: httptools reads it, not the plain-request reader."""
    writer.write(data[:40])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(data[40:])


async def one_waiting(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose request to "held" ([2, 2, 2, 2]) waits in the queue (400 ms)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("held", [2, 2, 2, 2]))
    await asyncio.sleep(0.1)
    return reader, writer


def stats(engine, name: str):
    return engine.ready_model(name).stats


def run(coro) -> None:
    asyncio.run(coro)


def test_both_readers_give_the_same_answers_and_statistics(repository):
    async def go():
        async with served(repository) as (plain, engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for values in ([1, 2, 3, 4], [5, 6, 7, 8]):
                writer.write(request("fast", values))
                answers.append(await read_answer(reader))
            await in_pieces(writer, request("fast", [1, 2, 3, 4]))
            answers.append(await read_answer(reader))
            writer.close()
            assert plain.taken == 2  # the third came in two reads: httptools read it
            assert [a[0] for a in answers] == [200, 200, 200]
            assert answers[0] == answers[2]  # the same request: byte for byte the same answer
            assert output(*answers[1][1:]).tolist() == [10, 12, 14, 16]
            assert set(answers[1][1]) == {"content-type", "inference-header-content-length", "content-length"}
            counters = stats(engine, "fast")
            assert counters.success.count == 3 and counters.fail.count == 0 and counters.pending == 0

    run(go())


def test_tritonclient_requests_are_read_without_httptools_and_answered_exactly(repository):
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
        async with served(repository) as (plain, _, _, port):
            pairs = await asyncio.to_thread(infer_many, port)
            assert all(np.array_equal(y, x * 2) for x, y in pairs)
            assert plain.taken == 20

    run(go())


def test_requests_that_come_while_an_answer_is_due_are_answered_after_it_in_order(repository):
    async def go():
        async with served(repository) as (_, _, _, port):
            reader, writer = await one_waiting(port)
            writer.write(
                request("held", [3, 3, 3, 3]) + b"GET /v2/models/held/ready HTTP/1.1\r\nHost: t\r\n\r\n"
                + request("fast", [4, 4, 4, 4])
            )  # fmt: skip
            answers = [await read_answer(reader) for _ in range(4)]
            writer.close()
            assert output(*answers[0][1:]).tolist() == [4, 4, 4, 4]
            assert output(*answers[1][1:]).tolist() == [6, 6, 6, 6]
            assert answers[2][0] == 200 and answers[2][2] == b""
            assert output(*answers[3][1:]).tolist() == [8, 8, 8, 8]

    run(go())


@pytest.mark.parametrize("split", [False, True], ids=["plain", "httptools"])
def test_a_client_that_goes_away_takes_its_request_out_of_the_queue(repository, split):
    async def go():
        async with served(repository) as (_, engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = request("held", [2, 2, 2, 2])
            if split:
                await in_pieces(writer, data)
            else:
                writer.write(data)
            await asyncio.sleep(0.1)
            writer.close()
            await asyncio.sleep(0.6)  # past the queue delay: the batch would have run by now
            counters = stats(engine, "held")
            assert counters.execution_count == 0
            assert counters.failures["CANCELED"] == 1 and counters.pending == 0

    run(go())


def test_a_backend_error_is_answered_alike_by_both_readers(repository):
    async def go():
        async with served(repository) as (plain, _, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            failing = request("fast", [-1, 1, 1, 1])
            await in_pieces(writer, failing)
            by_httptools = await read_answer(reader)
            writer.write(failing)
            by_plain = await read_answer(reader)
            writer.close()
            assert plain.taken == 1
            assert by_httptools == by_plain
            assert by_plain[0] == 500 and json.loads(by_plain[2]) == {"error": "negative input"}

    run(go())


def test_a_bug_while_answering_is_a_500_and_the_connection_serves_on(repository, monkeypatch):
    from tritonlite.frontends.http.header_cache import DecodedHeader

    async def go():
        async with served(repository) as (_, _, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            encode = DecodedHeader.encode

            def broken(self, response, request):
                raise RuntimeError("boom")

            monkeypatch.setattr(DecodedHeader, "encode", broken)
            writer.write(request("fast", [2, 2, 2, 2]))
            status, headers, body = await read_answer(reader)
            assert status == 500 and headers["content-type"] == "application/json"
            assert json.loads(body) == {"error": "internal error: RuntimeError: boom"}
            monkeypatch.setattr(DecodedHeader, "encode", encode)
            writer.write(request("fast", [3, 3, 3, 3]))
            status, headers, body = await read_answer(reader)
            writer.close()
            assert status == 200 and output(headers, body).tolist() == [6, 6, 6, 6]

    run(go())


def test_a_full_queue_is_refused_with_tritons_error(repository):
    async def go():
        async with served(repository) as (_, engine, _, port):
            first = await asyncio.open_connection("127.0.0.1", port)
            second = await asyncio.open_connection("127.0.0.1", port)
            first[1].write(request("bounded", [2, 2, 2, 2]))  # waits in the queue (size 1)
            await asyncio.sleep(0.1)
            second[1].write(request("bounded", [3, 3, 3, 3]))
            status, _, body = await read_answer(second[0])
            assert status == 503
            assert json.loads(body) == {"error": "[request id: <id_unknown>] Exceeds maximum queue size"}
            assert (await read_answer(first[0]))[0] == 200
            assert stats(engine, "bounded").failures["REJECTED"] == 1
            first[1].close()
            second[1].close()

    run(go())


@pytest.mark.parametrize("model", ["direct", "cached"])
def test_models_without_a_batching_queue_or_with_a_response_cache(repository, model):
    async def go():
        async with served(repository) as (plain, engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                writer.write(request(model, [1, 2, 3, 4]))
                status, headers, body = await read_answer(reader)
                assert status == 200 and output(headers, body).tolist() == [2, 4, 6, 8]
            writer.close()
            assert plain.taken == 3
            if model == "cached":
                assert stats(engine, model).cache_hit.count == 2  # the cache answered, as it should

    run(go())


@pytest.mark.parametrize("split", [False, True], ids=["plain", "httptools"])
def test_connection_close_closes_after_the_answer(repository, split):
    async def go():
        async with served(repository) as (_, _, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = request("fast", [1, 2, 3, 4], close=True)
            if split:
                await in_pieces(writer, data)
            else:
                writer.write(data)
            status, headers, _ = await read_answer(reader)
            assert status == 200 and headers["connection"] == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(go())


def test_an_escaped_infer_path_is_unquoted(repository):
    async def go():
        async with served(repository) as (_, _, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("fast", [1, 1, 1, 1], path="/v2/models/f%61st/infer?x=1"))
            status, headers, body = await read_answer(reader)
            writer.close()
            assert status == 200 and output(headers, body).tolist() == [2, 2, 2, 2]

    run(go())


def test_a_shutdown_while_an_answer_is_due_writes_it_and_then_closes(repository):
    async def go():
        async with served(repository) as (_, _, server, port):
            reader, writer = await one_waiting(port)
            for connection in list(server.server_state.connections):
                connection.shutdown()
            status, headers, body = await read_answer(reader)
            assert status == 200 and output(headers, body).tolist() == [4, 4, 4, 4]
            assert headers["connection"] == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(go())


def test_a_client_that_does_not_read_its_answers_is_not_read_until_it_does(repository):
    async def go():
        async with served(repository) as (plain, _, server, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("fast", [1, 1, 1, 1]))
            await read_answer(reader)
            [protocol] = server.server_state.connections
            protocol.pause_writing()  # as the transport does when its buffer passes the high mark
            writer.write(request("fast", [2, 2, 2, 2]))
            first = await read_answer(reader)  # taken by httptools, answered into the transport's buffer
            writer.write(request("fast", [3, 3, 3, 3]))
            await asyncio.sleep(0.2)
            assert not reader._buffer  # reading stopped after that answer: this one waits
            protocol.resume_writing()
            second = await read_answer(reader)
            writer.close()
            assert output(*first[1:]).tolist() == [4, 4, 4, 4] and output(*second[1:]).tolist() == [6, 6, 6, 6]
            assert plain.taken == 2  # not the one that came while writes were paused: httptools read it

    run(go())


def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_does_not(repository):
    async def go():
        async with served(repository, keep_alive=0.3) as (_, _, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("fast", [1, 1, 1, 1]))
            await read_answer(reader)
            await asyncio.sleep(0.2)
            writer.write(request("held", [1, 1, 1, 1]))  # in time; in progress for 400 ms
            await asyncio.sleep(0.35)  # past the first answer's deadline while busy: stays open
            status, _, _ = await read_answer(reader)
            assert status == 200
            assert await asyncio.wait_for(reader.read(), 2) == b""  # idle for the whole timeout: closed
            writer.close()

    run(go())


def test_a_request_the_server_withdraws_is_answered_as_cancelled(repository):
    async def go():
        async with served(repository) as (_, engine, _, port):
            reader, writer = await one_waiting(port)
            [[queued]] = engine.ready_model("held").scheduler.queues  # the one request in the queue
            queued.future.cancel()  # as a stopping scheduler withdraws what it has not run
            status, _, body = await read_answer(reader)
            writer.close()
            assert status == 499 and json.loads(body) == {"error": "request cancelled"}

    run(go())


def test_uvicorns_protocol_has_what_ours_builds_on():
    """HttpProtocol overrides or calls these of uvicorn's httptools protocol: an uvicorn release that
    renames one fails here, not in a client's request."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from tritonlite.frontends.http.protocol import HttpProtocol

    used = (
        "data_received", "on_message_begin", "on_headers_complete", "on_body", "on_message_complete",
        "on_response_complete", "connection_lost", "resume_writing", "shutdown", "_start_asgi_task",
        "_unset_keepalive_if_required", "timeout_keep_alive_handler",
    )  # fmt: skip
    for name in used:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    overridden = {name for name in vars(HttpProtocol) if callable(vars(HttpProtocol)[name])}
    assert overridden - {"__init__", "head", "writable", "answered", "_idle", "_start", "_serve_next", "_now_idle",
                         "_keep_alive_due"} <= set(used)  # fmt: skip
