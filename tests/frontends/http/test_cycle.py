"""uvicorn's cycle, patched: responses leave in one socket write; infer is answered without ASGI."""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.protocols.http import httptools_impl

from tritonlite.frontends.http import cycle


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Flow:
    write_paused = False


def respond(keep_alive: bool) -> Transport:
    cycle.install()
    cycle_class = httptools_impl.RequestResponseCycle
    assert getattr(cycle_class, "_tritonlite_cycle", False)
    transport = Transport()

    async def go():
        scope = {"type": "http", "method": "POST", "http_version": "1.1", "path": "/", "headers": []}
        cycle = cycle_class(
            scope, transport, Flow(), logging.getLogger("t"), logging.getLogger("t"), False, [],
            asyncio.Event(), False, keep_alive, lambda: None,
        )  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
        assert transport.writes == []  # held back until the body comes
        await cycle.send({"type": "http.response.body", "body": b"{}"})

    asyncio.run(go())
    return transport


def test_one_write_per_response():
    transport = respond(keep_alive=True)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\n{}")
    assert not transport.closed


def test_connection_close_still_closes_after_the_write():
    transport = respond(keep_alive=False)
    assert len(transport.writes) == 1 and b"connection: close" in transport.writes[0]
    assert transport.closed


def test_install_is_idempotent():
    cycle.install()
    assert cycle.install() is False


class FakeEngine:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def infer(self, request):
        self.started.set()
        try:
            await asyncio.Event().wait()  # a request that waits in a queue until cancelled
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class FakeApp:
    """Stands in for HttpFrontend: the cycle answers infer through ``infer_reply``."""

    max_input_size = 1000

    def __init__(self, queued: bool = False) -> None:
        self.engine = FakeEngine()
        self.queued = queued
        self.calls: list[tuple] = []
        self.asgi_paths: list[str] = []

    async def infer_reply(self, headers, read_body, run_queued, model_name, model_version):
        body = await read_body()
        self.calls.append((headers, body, model_name, model_version))
        if self.queued:
            if await run_queued(self.engine.infer("request")) is None:
                return None
        return 200, [(b"content-type", b"application/json")], b'{"ok":1}', None

    async def __call__(self, scope, receive, send):  # the ASGI path
        self.asgi_paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def too_large(self, size):
        raise AssertionError("not expected")


def make_cycle(transport: Transport, path: str, keep_alive: bool = True, body: bytes = b"{}"):
    cycle.install()
    scope = {"type": "http", "method": "POST", "http_version": "1.1", "path": path,
             "headers": [(b"x-test", b"1")]}  # fmt: skip
    new = httptools_impl.RequestResponseCycle(
        scope, transport, Flow(), logging.getLogger("t"), logging.getLogger("t"), False,
        [(b"server", b"tritonlite")], asyncio.Event(), False, keep_alive, lambda: None,
    )  # fmt: skip
    new.body = bytearray(body)
    new.more_body = False
    return new


def test_infer_is_answered_without_asgi_in_one_write():
    transport, app = Transport(), FakeApp()

    async def go():
        await make_cycle(transport, "/v2/models/m/versions/3/infer", body=b'{"inputs": []}').run_asgi(app)

    asyncio.run(go())
    assert app.asgi_paths == []
    assert app.calls == [([(b"x-test", b"1")], b'{"inputs": []}', "m", "3")]
    [written] = transport.writes
    assert written == (
        b"HTTP/1.1 200 OK\r\nserver: tritonlite\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n"
        b'{"ok":1}'
    )
    assert not transport.closed


def test_infer_without_keep_alive_closes():
    transport = Transport()
    asyncio.run(make_cycle(transport, "/v2/models/m/infer", keep_alive=False).run_asgi(FakeApp()))
    assert b"connection: close\r\n" in transport.writes[0] and transport.closed


@pytest.mark.parametrize("path", ["/v2/models/m/ready", "/v2/models/infer", "/v2/models/m/versions/x/infer"])
def test_other_paths_use_asgi(path):
    transport, app = Transport(), FakeApp()
    asyncio.run(make_cycle(transport, path).run_asgi(app))
    assert app.asgi_paths == [path] and app.calls == []
    assert transport.writes[0].startswith(b"HTTP/1.1 204")


def test_queued_infer_is_cancelled_when_the_client_disconnects():
    transport, app = Transport(), FakeApp(queued=True)

    async def go():
        current = make_cycle(transport, "/v2/models/m/infer")
        task = asyncio.ensure_future(current.run_asgi(app))
        await app.engine.started.wait()
        current.disconnected = True  # what uvicorn's connection_lost does
        current.message_event.set()
        await asyncio.wait_for(task, 5)
        return task.cancelling() if hasattr(task, "cancelling") else 0

    assert asyncio.run(go()) == 0  # the cancellation was the cycle's own and ends there
    assert app.engine.cancelled
    assert transport.writes == []  # nothing is answered to a client that left


class BrokenApp(FakeApp):
    async def infer_reply(self, headers, read_body, run_queued, model_name, model_version):
        raise RuntimeError("bug in the answer")


def test_a_failure_while_answering_infer_gets_uvicorns_500_and_is_logged(caplog):
    transport = Transport()
    with caplog.at_level(logging.ERROR, logger="t"):
        asyncio.run(make_cycle(transport, "/v2/models/m/infer").run_asgi(BrokenApp()))
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 500") and written.endswith(b"Internal Server Error")
    assert transport.closed  # as uvicorn's own 500: Connection: close
    assert "bug in the answer" in caplog.text  # logged with its traceback
