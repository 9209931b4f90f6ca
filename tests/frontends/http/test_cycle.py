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


# -- the protocol: the whole ASGI scope only for requests that go to ASGI ---------------------------


class MemoryTransport(Transport):
    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ScopeApp(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        await super().__call__(scope, receive, send)


def connect(app, transport: MemoryTransport, keep_alive: float = 75):
    """The protocol uvicorn is given, configured as server.py does, connected to ``transport``."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(
        app, http=cycle.protocol_class(), loop="none", lifespan="off", access_log=False, proxy_headers=False,
        timeout_keep_alive=keep_alive,
    )  # fmt: skip
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    return protocol


async def settle() -> None:
    for _ in range(20):  # let the request tasks (and pipelined ones) finish
        await asyncio.sleep(0)


def feed(app, data: bytes) -> tuple[MemoryTransport, object]:
    """Feed raw bytes to the protocol uvicorn is given; returns the transport and the protocol."""
    transport = MemoryTransport()

    async def go():
        protocol = connect(app, transport)
        protocol.data_received(data)
        await settle()
        return protocol

    return transport, asyncio.run(go())


def request(method: str, path: str, body: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def test_protocol_is_uvicorns_with_a_lean_infer_path():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert issubclass(cycle.protocol_class(), HttpToolsProtocol)


def test_an_unknown_uvicorn_layout_keeps_uvicorns_own_protocol():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Older:  # e.g. a uvicorn that starts request tasks inline, without _start_asgi_task
        on_message_begin = on_headers_complete = on_response_complete = HttpToolsProtocol.on_message_begin

    assert cycle.protocol_fits(HttpToolsProtocol)
    assert not cycle.protocol_fits(Older) and not cycle.protocol_fits(None)


def test_infer_goes_direct_with_the_few_scope_keys_it_reads():
    app = ScopeApp()
    transport, protocol = feed(app, request("POST", "/v2/models/m/versions/2/infer?q=1", b"{}"))
    assert app.calls == [([(b"host", b"t"), (b"content-length", b"2")], b"{}", "m", "2")] and app.scopes == []
    assert protocol.cycle.target == ("m", "2")
    assert set(protocol.cycle.scope) == {"type", "http_version", "method", "path", "headers"}
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_other_requests_get_uvicorns_whole_scope():
    app = ScopeApp()
    transport, _ = feed(app, request("GET", "/v2/models/m?x=1"))
    [scope] = app.scopes
    assert scope["path"] == "/v2/models/m" and scope["query_string"] == b"x=1"
    assert scope["client"] == ("127.0.0.1", 5000) and scope["headers"] == [(b"host", b"t"), (b"content-length", b"0")]
    assert transport.writes[0].startswith(b"HTTP/1.1 204")


def test_an_escaped_infer_path_is_unquoted_by_uvicorn_first():
    app = ScopeApp()
    _, protocol = feed(app, request("POST", "/v2/models/m%2Dx/infer", b"{}"))
    assert protocol.cycle.target is None and protocol.cycle.scope["path"] == "/v2/models/m-x/infer"
    assert [call[2] for call in app.calls] == ["m-x"]  # then the cycle answers it as any infer


def test_pipelined_requests_are_answered_in_order_through_both_paths():
    app = ScopeApp()
    data = request("POST", "/v2/models/a/infer", b"{}") + request("GET", "/v2/health/ready")
    data += request("POST", "/v2/models/b/infer", b"{}")
    transport, _ = feed(app, data)
    assert [call[2] for call in app.calls] == ["a", "b"] and [s["path"] for s in app.scopes] == ["/v2/health/ready"]
    assert [w[:12] for w in transport.writes] == [b"HTTP/1.1 200", b"HTTP/1.1 204", b"HTTP/1.1 200"]


def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_does_not():
    transport = MemoryTransport()

    async def go():
        protocol = connect(ScopeApp(), transport, keep_alive=0.2)
        protocol.data_received(request("POST", "/v2/models/a/infer", b"{}"))
        await settle()
        await asyncio.sleep(0.12)
        protocol.data_received(request("POST", "/v2/models/b/infer", b"{}"))  # in time: stays open
        await settle()
        await asyncio.sleep(0.12)  # past the first response's deadline, not the second's
        still_open = not transport.closed
        await asyncio.sleep(0.2)
        return still_open, len(transport.writes)

    still_open, answers = asyncio.run(go())
    assert still_open and answers == 2
    assert transport.closed  # idle for the whole timeout after the second answer


class SlowForB(FakeApp):
    """Answers model "a" at once; a request for "b" waits until cancelled."""

    async def infer_reply(self, headers, read_body, run_queued, model_name, model_version):
        await read_body()
        if model_name == "b" and await run_queued(self.engine.infer("request")) is None:
            return None
        return 200, [(b"content-type", b"application/json")], b"{}", None


def test_a_request_in_progress_keeps_the_connection_past_the_timeout():
    transport, app = MemoryTransport(), SlowForB()

    async def go():
        protocol = connect(app, transport, keep_alive=0.05)
        protocol.data_received(request("POST", "/v2/models/a/infer", b"{}"))
        await settle()
        armed = protocol.timeout_keep_alive_task is not None  # idle after the first answer
        protocol.data_received(request("POST", "/v2/models/b/infer", b"{}"))
        await app.engine.started.wait()
        await asyncio.sleep(0.15)  # the timer comes due while "b" is in progress
        closed = transport.closed
        protocol.connection_lost(None)
        await settle()
        return armed, closed, protocol.timeout_keep_alive_task, app.engine.cancelled

    armed, closed, timer, cancelled = asyncio.run(go())
    assert armed and not closed  # busy, not idle: the timer let it be
    assert timer is None and cancelled  # a lost connection stops the timer and the queued infer


def test_the_cycle_event_wakes_its_waiters_and_calls_its_hook_on_every_set():
    async def go():
        event = cycle._CycleEvent()
        hooked = []
        event.on_set = lambda: hooked.append(event.is_set())
        waiters = [asyncio.ensure_future(event.wait()) for _ in range(2)]
        gone = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        gone.cancel()  # a waiter that gives up leaves the others be
        await asyncio.sleep(0)
        event.set()
        event.set()
        woken = await asyncio.gather(*waiters)
        event.clear()
        late = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        return woken, hooked, late.done(), event.is_set()

    assert asyncio.run(go()) == ([True, True], [True, True], False, False)
