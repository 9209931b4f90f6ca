"""/infer as server-sent events (Accept: text/event-stream): a decoupled model's responses over HTTP,
one KServe JSON response per event; back-pressure from a slow reader; a client that leaves
cancels the request. A server runs in this process so that its connections' write buffers and the
models' statistics can be read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest
import requests

from tritonlite.frontends.http.exchange import InferEndpoint
from tritonlite.frontends.http.protocol import HttpConfig
from tritonlite.frontends.http.routes import build_api
from tritonlite.server import uvicorn_options

FLOOD = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            count = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
            sender = request.get_response_sender()
            for index in range(count):
                block = np.full(65536, index % 100, np.int8)  # about 128 KiB of JSON per response
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", block)]))
            if count < 0:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("negative count")))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

TICKER = """
import os
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            sent = 0
            while sent < 500 and not request.is_cancelled():
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([sent], np.int8))]))
                sent += 1
                time.sleep(0.02)
            with open(os.environ["TL_TICKER_LOG"], "w") as log:
                log.write(str(sent))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

IDENTITY = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", pb_utils.get_input_tensor_by_name(r, "N")
                                                            .as_numpy().astype("int8"))]) for r in requests]
"""


def write_model(root: Path, name: str, source: str, decoupled: bool) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "1" / "model.py").write_text(source)
    policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
    (root / name / "config.pbtxt").write_text(
        f'backend: "python"\nmax_batch_size: 0\n{policy}'
        'input [{ name: "N" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_INT8 dims: [ -1 ] }]\n'
    )


@pytest.fixture()
def repository(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    write_model(root, "flood", FLOOD, True)
    write_model(root, "ticker", TICKER, True)
    write_model(root, "plain", IDENTITY, False)
    monkeypatch.setenv("TL_TICKER_LOG", str(tmp_path / "ticker.log"))
    return root


@contextlib.asynccontextmanager
async def served(repository: Path):
    from tritonlite.engine import Engine, EngineOptions
    from tritonlite.server import _start_uvicorn

    engine = Engine(EngineOptions(repositories=[repository]))
    await engine.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = HttpConfig(build_api(engine), InferEndpoint(engine), **uvicorn_options("127.0.0.1", port))
    server, task = await _start_uvicorn(config, "HTTP")
    try:
        yield engine, server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await engine.stop()


def body(count: int) -> bytes:
    return json.dumps({"inputs": [{"name": "N", "datatype": "INT32", "shape": [1], "data": [count]}]}).encode()


def events(answer: requests.Response) -> list[dict]:
    return [json.loads(line[len(b"data: ") :]) for line in answer.iter_lines() if line]


def stream(port: int, model: str, count: int, accept: str = "text/event-stream") -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer", data=body(count), headers={"Accept": accept}, timeout=30,
        stream=True,
    )  # fmt: skip


def test_a_decoupled_models_responses_come_as_events(repository):
    async def go():
        async with served(repository) as (engine, _, port):

            def client():
                with stream(port, "flood", 3) as answer:
                    return answer.status_code, answer.headers, events(answer)

            status, headers, got = await asyncio.to_thread(client)
            assert status == 200
            assert headers["content-type"] == "text/event-stream" and headers["transfer-encoding"] == "chunked"
            assert [event["outputs"][0]["data"][:2] for event in got] == [[0, 0], [1, 1], [2, 2]]
            assert got[0]["model_name"] == "flood" and got[0]["outputs"][0]["shape"] == [65536]

            def more():  # the connection serves a next request after the stream
                session = requests.Session()
                first = session.post(f"http://127.0.0.1:{port}/v2/models/flood/infer", data=body(1),
                                     headers={"Accept": "text/event-stream"}, timeout=30)  # fmt: skip
                second = session.post(f"http://127.0.0.1:{port}/v2/models/plain/infer", data=body(7), timeout=30)
                return first.content.count(b"data: "), second.json()["outputs"][0]["data"]

            assert await asyncio.to_thread(more) == (1, [7])
            assert engine.ready_model("flood").stats.pending == 0

    asyncio.run(go())


def test_without_asking_for_a_stream_a_decoupled_model_is_triton_s_501(repository):
    async def go():
        async with served(repository) as (_, _, port):
            answer = await asyncio.to_thread(stream, port, "flood", 2, "application/json")
            assert answer.status_code == 501
            assert answer.json() == {"error": "HTTP end point doesn't support models with decoupled transaction policy"}

    asyncio.run(go())


def test_errors_before_and_during_the_stream(repository):
    async def go():
        async with served(repository) as (_, _, port):

            def client():
                refused = requests.post(
                    f"http://127.0.0.1:{port}/v2/models/flood/infer", headers={"Accept": "text/event-stream"},
                    data=json.dumps({"inputs": [{"name": "N", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                    timeout=30,
                )  # fmt: skip
                with stream(port, "flood", -1) as failing:
                    return refused, events(failing)

            refused, got = await asyncio.to_thread(client)
            # refused before any response: an ordinary answer, with the status of the error
            assert refused.status_code == 400 and "data-type is 'FP32'" in refused.json()["error"]
            assert got == [{"error": "negative count"}]

    asyncio.run(go())


def test_a_model_that_is_not_decoupled_gives_one_event(repository):
    async def go():
        async with served(repository) as (_, _, port):

            def client():
                with stream(port, "plain", 5) as answer:
                    return events(answer)

            assert await asyncio.to_thread(client) == [
                {"model_name": "plain", "model_version": "1",
                 "outputs": [{"name": "OUT", "datatype": "INT8", "shape": [1], "data": [5]}]}
            ]  # fmt: skip

    asyncio.run(go())


def test_a_slow_reader_holds_the_responses_back_not_the_server_memory(repository):
    count = 60  # about 7.5 MiB of events

    async def go():
        async with served(repository) as (_, server, port):
            peak = {"buffer": 0, "paused": False}
            stop = asyncio.Event()

            async def sample():
                while not stop.is_set():
                    for connection in server.server_state.connections:
                        transport = connection.transport
                        if transport is not None and not transport.is_closing():
                            peak["buffer"] = max(peak["buffer"], transport.get_write_buffer_size())
                        peak["paused"] |= connection.flow is not None and connection.flow.write_paused
                    await asyncio.sleep(0.002)

            sampler = asyncio.get_running_loop().create_task(sample())
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
            payload = body(count)
            writer.write(
                b"POST /v2/models/flood/infer HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
            )
            received = bytearray()
            while not received.endswith(b"\r\n0\r\n\r\n"):
                chunk = await asyncio.wait_for(reader.read(32768), 30)
                assert chunk, "closed before the stream ended"
                received += chunk
                await asyncio.sleep(0.002)  # a slow reader
            stop.set()
            await sampler
            writer.close()
            assert received.count(b"data: ") == count
            assert len(received) > 7_000_000
            assert peak["paused"]  # the reader was slow enough to fill the buffers
            # at most the high-water mark (64 KiB) and one event (128 KiB): not the whole stream
            assert peak["buffer"] < 1 << 20, peak

    asyncio.run(go())


def test_a_client_that_leaves_mid_stream_cancels_the_request(repository, tmp_path):
    async def go():
        async with served(repository) as (engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            payload = body(0)
            writer.write(
                b"POST /v2/models/ticker/infer HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
            )
            seen = b""
            while seen.count(b"data: ") < 3:
                seen += await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
            log = tmp_path / "ticker.log"
            for _ in range(250):
                if log.exists() and log.read_text():
                    break
                await asyncio.sleep(0.02)
            sent = int(log.read_text())
            assert 3 <= sent < 100  # the model saw the cancellation and stopped (500 otherwise)
            for _ in range(100):
                if engine.ready_model("ticker").stats.pending == 0:
                    break
                await asyncio.sleep(0.02)
            assert engine.ready_model("ticker").stats.pending == 0

    asyncio.run(go())


def test_a_client_that_leaves_generate_stream_cancels_the_request(repository, tmp_path):
    async def go():
        async with served(repository) as (engine, _, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            payload = b'{"N": 0}'
            writer.write(
                b"POST /v2/models/ticker/generate_stream HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
            )
            seen = b""
            while seen.count(b"data: ") < 3:
                seen += await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
            log = tmp_path / "ticker.log"
            for _ in range(250):
                if log.exists() and log.read_text():
                    break
                await asyncio.sleep(0.02)
            assert 3 <= int(log.read_text()) < 100
            for _ in range(100):
                if engine.ready_model("ticker").stats.pending == 0:
                    break
                await asyncio.sleep(0.02)
            assert engine.ready_model("ticker").stats.pending == 0

    asyncio.run(go())
