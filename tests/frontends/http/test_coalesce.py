"""HTTP responses leave in one socket write (headers and body together)."""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http import httptools_impl

from tritonlite.frontends.http import coalesce


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
    coalesce.install()
    cycle_class = httptools_impl.RequestResponseCycle
    assert getattr(cycle_class, "_tritonlite_coalescing", False)
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
    coalesce.install()
    assert coalesce.install() is False
