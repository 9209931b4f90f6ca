"""The HTTP connection: uvicorn's httptools protocol, with infer requests served by an exchange.

``HttpProtocol`` is handed to uvicorn as ``HttpConfig(http=HttpProtocol)``, uvicorn's own
extension point. uvicorn parses every request. When the head of a ``POST .../infer`` is
complete, the protocol creates an ``InferExchange`` (``exchange.py``) in the place of uvicorn's
request/response cycle, feeds it the body and starts it in turn; everything else goes to the
FastAPI application through ASGI as uvicorn does it. One request at a time is answered per
connection; pipelined requests, infer or not, wait in uvicorn's queue.

Two things are leaner than uvicorn's own: a whole plain infer request that one read brought is
read by ``plain_request.py`` instead of httptools' per-header callbacks (the same exchange
serves it), and one keep-alive timer per idle spell moves on instead of a new timer per response.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tritonlite.frontends.http.errors import Headers
from tritonlite.frontends.http.exchange import InferEndpoint, InferExchange, InferHeaders
from tritonlite.frontends.http.plain_request import PlainRequestReader
from tritonlite.frontends.http.targets import InferTargets


class HttpConfig(uvicorn.Config):
    """uvicorn's configuration, carrying what infer exchanges share."""

    def __init__(self, app: Any, endpoint: InferEndpoint, **kwargs: Any) -> None:
        super().__init__(app, http=HttpProtocol, **kwargs)
        self.endpoint = endpoint
        self.infer_targets = InferTargets()
        self.plain_requests = PlainRequestReader(self.infer_targets, endpoint.guard)


class HttpProtocol(HttpToolsProtocol):
    """One HTTP connection of the tritonlite server (see the module's text)."""

    config: HttpConfig

    def __init__(self, config: HttpConfig, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.endpoint = config.endpoint
        self.infer_targets = config.infer_targets
        self.plain_requests = config.plain_requests
        self.answering: InferExchange | None = None  # the exchange whose answer is due
        self._in_message = False  # httptools is inside a request: its next bytes are httptools'
        self._idle_since: float | None = None  # when the last answer ended with nothing after it
        self._waiting_for_writes = False  # the next request waits until the client reads its answers

    # -- bytes in ------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._in_message and self._idle() and not self.flow.write_paused:
            head = self.plain_requests.read(data)
            if head is not None:  # one whole plain infer request: no httptools callbacks
                self._idle_since = None
                target = head.target
                exchange = InferExchange(
                    self.endpoint, self, target.model_name, target.model_version, head.headers, head.keep_alive
                )
                self.cycle = self.answering = exchange  # type: ignore[assignment]  (where uvicorn's cycle stands)
                exchange.start_whole(data[len(data) - head.content_length :])
                return
        super().data_received(data)

    def _idle(self) -> bool:
        """No response is due on this connection."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and not self.pipeline

    def on_message_begin(self) -> None:
        self._in_message = True
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = None  # type: ignore[assignment]  (built for ASGI requests only)

    def on_headers_complete(self) -> None:
        parser = self.parser
        target = None
        if parser.get_method() == b"POST" and not parser.should_upgrade():
            target = self.infer_targets.find(self.url)
        if target is None:  # not infer: uvicorn's own way, with the whole ASGI scope
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
            super().on_headers_complete()
            return
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        exchange = InferExchange(
            self.endpoint, self, target.model_name, target.model_version,
            InferHeaders.of(self.headers, self.endpoint.guard), keep_alive,
            self.expect_100_continue,
        )  # fmt: skip
        idle = self._idle()
        self.cycle = exchange  # type: ignore[assignment]  (it stands where uvicorn's cycle stands)
        if idle:
            self._start(exchange)
        else:  # behind a response still in progress, as uvicorn queues a pipelined request
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, None))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, InferExchange):
            cycle.receive(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        cycle = self.cycle
        if isinstance(cycle, InferExchange):
            cycle.body_complete()
        else:
            super().on_message_complete()

    # -- answers out -------------------------------------------------------------------------------

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, InferExchange):  # a pipelined infer request's turn
            self._start(cycle)
        else:
            super()._start_asgi_task(cycle, app)

    def _start(self, exchange: InferExchange) -> None:
        self.answering = exchange
        exchange.start()

    def head(self, status: int, headers: Headers, length: int | None, keep_alive: bool) -> bytes:
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:  # none with tritonlite's settings
            parts += (name, b": ", value, b"\r\n")
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts += (b"content-length: ", str(length).encode(), b"\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    async def writable(self) -> None:
        await self.flow.drain()  # uvicorn's flow control: pause_writing/resume_writing set it

    def answered(self, exchange: InferExchange) -> None:
        if self.answering is exchange:
            self.answering = None
        if not exchange.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        flow = self.flow
        if flow.write_paused:  # the client does not read its answers: take no more until it does
            flow.pause_reading()
            self._waiting_for_writes = True
            self._idle_since = None
        elif flow.read_paused or self.pipeline:
            self._serve_next()
        else:
            self._now_idle()

    def _serve_next(self) -> None:
        if self.flow.read_paused:
            self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._now_idle()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._waiting_for_writes and not self.transport.is_closing():
            self._waiting_for_writes = False
            self._serve_next()

    # -- the connection ends -----------------------------------------------------------------------

    def shutdown(self) -> None:
        """The server stops. An idle HTTPS connection is dropped: closing it would wait (up to 30 s) for
        the client's TLS close_notify, which an idle keep-alive client never sends."""
        cycle = self.cycle
        idle = cycle is None or cycle.response_complete
        if idle and self.transport.get_extra_info("sslcontext") is not None:
            self.transport.abort()
        else:
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        answering = self.answering
        if answering is not None:
            self.answering = None
            answering.lost()
        if isinstance(self.cycle, InferExchange):
            self.cycle = None  # type: ignore[assignment]  (uvicorn signals only its own cycles)
        super().connection_lost(exc)
        timer = self.timeout_keep_alive_task
        if timer is not None:
            timer.cancel()
            self.timeout_keep_alive_task = None

    # -- keep-alive: one timer that moves on, not a new one per response ----------------------------

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def _now_idle(self) -> None:
        """An answer ended with nothing after it: the keep-alive timeout counts from now."""
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None:
            return  # a request came: its answer arms the timer again
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()
