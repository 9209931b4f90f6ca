"""uvicorn's request/response cycle, made lean for inference.

uvicorn's httptools protocol parses each request, creates a ``RequestResponseCycle`` and runs
the ASGI app in a task. This module swaps in a subclass of that cycle (uvicorn looks the class
up in its module for every request) that changes two things:

- **Infer requests skip ASGI.** A ``POST .../infer`` for the tritonlite HTTP app reads the body
  straight from the cycle, asks the app for the answer (``HttpFrontend.infer_reply``) and writes
  status line, headers and body in one ``transport.write``. No ``receive``/``send`` message
  dicts, no header re-validation, and no watcher task per queued request: a client that
  disconnects while its request is queued is noticed through the cycle's own event, which
  uvicorn sets when the connection is lost. Everything else (parsing, keep-alive, pipelining,
  flow control, ``Expect: 100-continue``, graceful shutdown) stays uvicorn's.
- **Other responses leave in one write.** uvicorn writes the status line and headers on
  ``http.response.start`` and the body on ``http.response.body``: two ``send`` system calls per
  small response. The headers are held back and written with the first body chunk.

uvicorn is also given a subclass of its httptools protocol (``protocol_class()``, passed as
``uvicorn.Config(http=...)``) that sees an infer request coming when its headers are complete:
it creates the cycle with the few scope keys the direct path reads instead of the whole ASGI
scope (built only for requests that go to ASGI), and it keeps one keep-alive timer per idle
spell instead of arming a new one after every response.

It relies on uvicorn's module layout; when that is not found nothing is patched and uvicorn
behaves as usual. ``TRITONLITE_HTTP_DIRECT=0`` keeps infer on the ASGI path (the app answers
it the same way either way).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_COALESCE_LIMIT = 65536  # a bigger body is not worth copying to save one system call


class _Collect:
    """Stands in for the transport while uvicorn formats a message; keeps the bytes."""

    __slots__ = ("chunks", "closed", "real")

    def __init__(self, real) -> None:
        self.real = real
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True

    def __getattr__(self, name):
        return getattr(self.real, name)


class _CycleEvent:
    """The cycle's message event: uvicorn sets it on body data, at the message's end and on a lost
    connection, and its ASGI ``receive`` waits on it and clears it. Plain attributes instead of
    ``asyncio.Event``'s waiter deque and loop binding (one is made per request). While a queued
    infer waits, setting it on a lost connection cancels that infer (``on_set``)."""

    __slots__ = ("_set", "_waiters", "on_set")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future] | None = None
        self.on_set = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiters = self._waiters
            if waiters:
                self._waiters = None
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(True)
        if self.on_set is not None:
            self.on_set()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters and waiter in self._waiters:
                self._waiters.remove(waiter)


def response_head(
    status_line: bytes, default_headers: list, headers: list, length: int, keep_alive: bool
) -> bytes:
    """Status line and headers of a response with a body of ``length`` bytes."""
    parts = [status_line]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-length: ", str(length).encode(), b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def write_response(transport, head: bytes, payload: bytes) -> None:
    """One write for a response, two when the body is too big to be worth copying behind its head."""
    if len(payload) <= _COALESCE_LIMIT:
        transport.write(head + payload)
    else:
        transport.write(head)
        transport.write(payload)


_protocol: type | None = None  # set by install(): the protocol class for uvicorn.Config(http=...)


def protocol_class() -> type | str:
    """What to pass as ``uvicorn.Config(http=...)``: the lean protocol once installed, else uvicorn's."""
    install()
    return _protocol if _protocol is not None else "httptools"


# what the protocol subclass overrides or calls of uvicorn's (an older layout keeps uvicorn's own)
_PROTOCOL_METHODS = (
    "on_message_begin", "on_headers_complete", "on_body", "on_response_complete", "connection_lost",
    "_start_asgi_task", "_unset_keepalive_if_required", "timeout_keep_alive_handler",
)  # fmt: skip


def protocol_fits(base: type | None) -> bool:
    """Whether uvicorn's protocol class has the layout the lean protocol builds on."""
    return base is not None and all(callable(getattr(base, name, None)) for name in _PROTOCOL_METHODS)


def _lean_protocol(
    base: type, cycle_class: type, parse_infer_path, high_water: Callable[[], int], status_lines: dict[int, bytes]
) -> type:
    """uvicorn's httptools protocol, building the whole ASGI scope only for requests that need it."""
    targets: dict[bytes, tuple[str, str, str] | None] = {}  # infer path parsing by raw path

    class TritonliteProtocol(base):  # type: ignore[misc, valid-type]
        _idle_since: float | None = None  # when the last response ended with nothing after it
        _lane = None  # the app's fast lane (fast_lane.py), when this connection may use it
        _fast = None  # the lane's request whose answer is due (fast_lane.InFlight)
        _held_data: list[bytes] | None = None  # bytes that came while that answer was due
        _parsing = False  # httptools is inside a request (its next bytes are httptools')
        _close_after = False  # a shutdown came while that answer was due

        # -- the fast lane: a whole plain infer request in one read -------------------------------

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if not self.root_path and self.limit_concurrency is None and not self.access_log:
                self._lane = getattr(self.app, "fast_lane", None)

        def data_received(self, data: bytes) -> None:
            if self._fast is not None:  # in order: these bytes are read once the answer is out
                if self._held_data is None:
                    self._held_data = []
                self._held_data.append(data)
                self.flow.pause_reading()
                return
            lane = self._lane
            # (while the client does not read its answers, the regular path waits for it to)
            if lane is not None and not self._parsing and not self.pipeline and not self.flow.write_paused:
                cycle = self.cycle
                if cycle is None or cycle.response_complete:
                    inflight = lane.start(data, self._fast_answer)
                    if inflight is not None:
                        self._idle_since = None
                        self._fast = inflight
                        return
            super().data_received(data)

        def _fast_answer(self, status: int, headers: list[tuple[bytes, bytes]], payload: bytes) -> None:
            self._fast = None
            transport = self.transport
            if transport.is_closing():
                return
            head = response_head(status_lines[status], self.server_state.default_headers, headers, len(payload), True)
            write_response(transport, head, payload)
            self.server_state.total_requests += 1
            if self._close_after:
                transport.close()
                return
            held = self._held_data
            if held:
                self._held_data = None
                self.flow.resume_reading()
                self.data_received(b"".join(held))
                cycle = self.cycle
                if self._fast is not None or self._parsing or transport.is_closing():
                    return
                if cycle is not None and not cycle.response_complete:
                    return  # its response arms the keep-alive timer
            self._now_idle()

        def on_message_complete(self) -> None:
            self._parsing = False
            super().on_message_complete()

        def shutdown(self) -> None:
            if self._fast is not None:
                self._close_after = True  # closed once its answer is written
                return
            super().shutdown()

        # -- an infer body: its chunks kept as they came, joined (if more than one) when read ------

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            chunks = cycle.chunks
            if chunks is None:  # ASGI: uvicorn's bytearray
                super().on_body(body)
                return
            if cycle.response_complete:
                return
            chunks.append(body)
            cycle.received += len(body)
            if cycle.received > high_water():
                self.flow.pause_reading()
            cycle.message_event.set()

        # -- keep-alive: one timer that moves on, not a new one per response -------------------
        # uvicorn cancels its keep-alive timer on any data and arms a new one after every
        # response; here a response only notes the time, and the timer, when it fires, closes the
        # connection or waits again for what is left of the timeout.

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self._idle_since = None
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._now_idle()

        def _now_idle(self) -> None:
            """A response ended with nothing after it: the keep-alive timeout counts from now."""
            self._idle_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

        def _keep_alive_due(self) -> None:
            self.timeout_keep_alive_task = None
            since = self._idle_since
            if since is None:
                return  # a request came: its response arms the timer again
            left = since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
            else:
                self.timeout_keep_alive_handler()

        def connection_lost(self, exc) -> None:
            fast = self._fast
            if fast is not None:
                self._fast = None
                fast.cancel()
            super().connection_lost(exc)
            timer = self.timeout_keep_alive_task
            if timer is not None:
                timer.cancel()
                self.timeout_keep_alive_task = None

        # -- the scope ---------------------------------------------------------------------------

        def on_message_begin(self) -> None:
            self._parsing = True
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self.scope = None

        def on_headers_complete(self) -> None:
            target = self._infer_target()
            if target is None:  # everything but infer: uvicorn's own way, with the whole scope
                url, headers, expect = self.url, self.headers, self.expect_100_continue
                super().on_message_begin()
                self.url, self.headers, self.expect_100_continue = url, headers, expect
                self.scope["headers"] = headers
                super().on_headers_complete()
                return
            parser = self.parser
            http_version = parser.get_http_version()
            self.scope = scope = {
                "type": "http", "http_version": http_version, "method": "POST", "path": target[2],
                "headers": self.headers,
            }  # fmt: skip  (what the direct path reads; the ASGI path never sees this scope)
            existing = self.cycle
            self.cycle = cycle = cycle_class(
                scope, self.transport, self.flow, self.logger, self.access_logger, self.access_log,
                self.server_state.default_headers, None, self.expect_100_continue,
                http_version != "1.0" and parser.should_keep_alive(), self.on_response_complete,
            )  # fmt: skip
            cycle.target = target[0], target[1]
            cycle.chunks = []
            cycle.loop = self.loop
            if existing is None or existing.response_complete:
                self._start_asgi_task(cycle, self.app)
            else:  # pipelined behind a response still in progress, as uvicorn queues it
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, self.app))

        def _infer_target(self) -> tuple[str, str, str] | None:
            """(model, version, path) of an infer request for the tritonlite app, else None."""
            parser = self.parser
            if parser.get_method() != b"POST" or self.root_path or self.limit_concurrency is not None:
                return None
            if parser.should_upgrade() or not hasattr(self.app, "infer_reply"):
                return None
            raw_path = self.url.partition(b"?")[0]
            try:
                return targets[raw_path]
            except KeyError:
                pass
            found = None
            if b"%" not in raw_path:  # escaped: uvicorn unquotes it
                try:
                    path = raw_path.decode("ascii")
                except UnicodeDecodeError:
                    path = None
                target = None if path is None else parse_infer_path(path)
                found = None if target is None else (target[0], target[1], path)
            if len(targets) >= 1024:
                targets.clear()
            targets[raw_path] = found
            return found

    return TritonliteProtocol


def install() -> bool:
    """Patch uvicorn's httptools protocol; returns whether it was patched."""
    global _protocol
    if os.environ.get("TRITONLITE_HTTP_COALESCE", "1") == "0":
        return False
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:
        return False
    base = getattr(httptools_impl, "RequestResponseCycle", None)
    status_lines = getattr(httptools_impl, "STATUS_LINE", None)
    if base is None or getattr(base, "_tritonlite_cycle", False) or not hasattr(base, "send"):
        return False
    if not isinstance(status_lines, dict) or not hasattr(base, "run_asgi"):
        return False
    direct = os.environ.get("TRITONLITE_HTTP_DIRECT", "1") != "0"
    from tritonlite.frontends.http.app import deliver, parse_infer_path

    class TritonliteCycle(base):  # type: ignore[misc, valid-type]
        _tritonlite_cycle = True

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.message_event = _CycleEvent()
            self._held: list[bytes] | None = None
            self._queued_task: asyncio.Task | None = None
            self.target: tuple[str, str] | None = None  # (model, version) when the protocol saw an infer
            # an infer body's chunks as they came (None: ASGI reads uvicorn's bytearray ``body``)
            self.chunks: list[bytes] | None = None
            self.received = 0
            self.loop: asyncio.AbstractEventLoop | None = None  # known when the protocol made this cycle

        # -- infer without ASGI -----------------------------------------------------------------

        async def run_asgi(self, app) -> None:
            target = self.target
            if target is None:
                scope = self.scope
                if direct and scope["method"] == "POST" and hasattr(app, "infer_reply"):
                    target = parse_infer_path(scope["path"])
            if target is not None:
                await self._run_infer(app, target[0], target[1])
                return
            await super().run_asgi(app)

        async def _run_infer(self, app, model_name: str, model_version: str) -> None:
            try:
                reply = await app.infer_reply(
                    self.scope["headers"],
                    lambda: self._read_body(app),
                    self._infer_queued,
                    model_name,
                    model_version,
                )
                if reply is None:
                    return  # the client went away while its request was queued
                await deliver(reply, self._respond, app.engine, model_name)
            except BaseException as exc:  # as uvicorn's run_asgi: log, then 500 or close
                self.logger.error("Exception while answering an infer request\n", exc_info=exc)
                if not self.response_started:
                    await self.send_500_response()
                else:
                    self.transport.close()
            finally:
                self.on_response = lambda: None

        async def _read_body(self, app) -> bytes:
            if self.waiting_for_100_continue and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.waiting_for_100_continue = False
            chunks = self.chunks
            if chunks is None:  # started by uvicorn's protocol: the body is in its bytearray
                self.chunks = chunks = [bytes(self.body)] if self.body else []
                self.received = len(self.body)
                self.body = bytearray()
            while self.more_body and not self.disconnected and not self.response_complete:
                if self.received > app.max_input_size:
                    break
                self.flow.resume_reading()
                await self.message_event.wait()
                self.message_event.clear()
                if self.body:  # uvicorn's on_body while this cycle was not the protocol's own
                    chunks.append(bytes(self.body))
                    self.received += len(self.body)
                    self.body = bytearray()
            if self.received > app.max_input_size:
                raise app.too_large(self.received)
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.received = 0
            return body

        async def _infer_queued(self, work) -> Any:
            """Await the infer ``work``, unless the client disconnects first: then the request leaves
            its queue."""
            loop = self.loop
            # with the loop given, current_task skips get_running_loop's getpid() system call
            task = asyncio.current_task(loop) if loop is not None else asyncio.current_task()
            event = self.message_event
            event.on_set = self._on_event
            self._queued_task = task
            try:
                return await work
            except asyncio.CancelledError:
                if self.disconnected and self._queued_task is None:  # cancelled by _on_event
                    if hasattr(task, "uncancel"):  # Python 3.11+: this cancellation ends here
                        task.uncancel()
                    return None
                raise
            finally:
                event.on_set = None
                self._queued_task = None

        def _on_event(self) -> None:
            task = self._queued_task
            if task is not None and self.disconnected:
                self._queued_task = None
                task.cancel()

        async def _respond(self, status: int, headers: list[tuple[bytes, bytes]], payload: bytes) -> None:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            head = response_head(status_lines[status], self.default_headers, headers, len(payload), self.keep_alive)
            write_response(self.transport, head, payload)
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

        # -- every other response: headers written with the first body chunk -------------------

        async def send(self, message) -> None:
            kind = message.get("type")
            if kind == "http.response.start" and not self.response_started:
                real = self.transport
                self.transport = _Collect(real)
                try:
                    await super().send(message)
                finally:
                    self._held = self.transport.chunks
                    self.transport = real
                return
            held = self._held
            if kind == "http.response.body" and held:
                self._held = None
                real = self.transport
                collect = _Collect(real)
                self.transport = collect
                try:
                    await super().send(message)
                finally:
                    self.transport = real
                if sum(len(chunk) for chunk in collect.chunks) <= _COALESCE_LIMIT:
                    real.write(b"".join(held + collect.chunks))
                else:
                    real.write(b"".join(held))
                    for chunk in collect.chunks:
                        real.write(chunk)
                if collect.closed:
                    real.close()
                return
            await super().send(message)

    httptools_impl.RequestResponseCycle = TritonliteCycle
    protocol_base = getattr(httptools_impl, "HttpToolsProtocol", None)
    if direct and protocol_fits(protocol_base):
        _protocol = _lean_protocol(
            protocol_base, TritonliteCycle, parse_infer_path, lambda: httptools_impl.HIGH_WATER_LIMIT, status_lines
        )
    log.debug("HTTP responses are written in one piece%s", "; infer skips ASGI" if direct else "")
    return True
