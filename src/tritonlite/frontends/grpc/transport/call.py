"""One RPC: an HTTP/2 stream's requests in, its responses and status out.

A call is also the handler's context (``invocation_metadata``, ``abort``, ``time_remaining``). The
connection feeds it what HTTP/2 brings for its stream; it writes through the connection's HTTP/2 state,
within the stream's flow-control window, and ends with the status trailers (alone, as a
"trailers-only" response, when nothing was sent before).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc

from tritonlite.frontends.grpc.transport import eager
from tritonlite.frontends.grpc.transport.framing import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    INTERNAL,
    OK,
    FramingError,
    MessageReader,
    frame,
    status_headers,
)
from tritonlite.frontends.grpc.transport.http2 import Headers, Http2Connection

Metadata = tuple[tuple[str, str | bytes], ...]
UnaryHandler = Callable[[Any, "Call"], Awaitable[Any]]
StreamHandler = Callable[[AsyncIterator[Any], "Call"], AsyncIterator[Any]]

COPY_LIMIT = 64 * 1024  # a response message bigger than this is sent from its own buffer, not copied
DESERIALIZE_FAILED = "Exception deserializing request!"


@dataclass(frozen=True)
class Method:
    """One method of the service: its handler, how its messages turn into objects and back (None:
    the handler takes a bytes-like view of the request and gives bytes), and whether the server's
    response compression applies."""

    handler: UnaryHandler | StreamHandler
    streaming: bool
    decode: Callable[[bytes], Any] | None = None
    encode: Callable[[Any], bytes] | None = None
    compressed: bool = False


class Carrier(Protocol):
    """What a call uses of the connection that carries it (``connection.GrpcConnection``)."""

    h2: Http2Connection

    def flush(self) -> None: ...
    async def writable(self) -> None: ...
    def forgive_pings(self) -> None: ...
    def response_head(self, encoding: str | None) -> Headers: ...
    def ended(self, call: Call) -> None: ...
    def reset_stream(self, stream_id: int) -> None: ...
    def log_failure(self, call: Call, exc: BaseException) -> None: ...


class Abort(Exception):
    """Raised by ``Call.abort``: the call ends with this status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class Call:
    """One RPC on one stream of a connection."""

    __slots__ = (
        "connection", "stream_id", "method", "metadata", "reader", "response_encoding", "task", "ended",
        "_head_sent", "_pending", "_trailers", "_drained", "_requests", "_request", "_deadline", "_expired",
        "_remote_closed",
    )  # fmt: skip

    def __init__(
        self,
        connection: Carrier,
        stream_id: int,
        method: Method,
        metadata: Metadata,
        reader: MessageReader,
        response_encoding: str | None,
        timeout: float | None,
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.method = method
        self.metadata = metadata
        self.reader = reader
        self.response_encoding = response_encoding
        self.task: asyncio.Task | None = None
        self.ended = False
        self._head_sent = False
        self._pending: deque[memoryview] | None = None  # response bytes waiting for flow-control window
        self._trailers: list | None = None  # sent once _pending is out
        self._drained: asyncio.Event | None = None
        self._requests: asyncio.Queue | None = None  # streaming calls: decoded requests, None at the end
        self._request: bytes | None = None  # unary calls: the one message
        self._remote_closed = False
        self._expired = False
        self._deadline: asyncio.TimerHandle | None = None
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_at(loop.time() + timeout, self._expire)
        if method.streaming:
            self._requests = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._run_stream())

    # -- the handler's context ------------------------------------------------------------------

    def invocation_metadata(self) -> Metadata:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise Abort(code, details)

    def time_remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else max(deadline.when() - asyncio.get_running_loop().time(), 0.0)

    # -- what the connection reports ------------------------------------------------------------

    def received(self, data: bytes) -> None:
        """DATA for this stream."""
        if self.ended:
            return
        try:
            messages = self.reader.feed(data)
        except FramingError as exc:
            self.finish(exc.code, exc.details)
            return
        requests = self._requests
        if requests is not None:
            decode = self.method.decode
            for message in messages:
                try:
                    requests.put_nowait(decode(message) if decode is not None else message)
                except Exception:
                    self.finish(INTERNAL, DESERIALIZE_FAILED)
                    if self.task is not None:
                        self.task.cancel()
                    return
        elif messages:
            if self._request is not None or len(messages) > 1:
                self.finish(grpc.StatusCode.UNIMPLEMENTED.value[0], "Received a second request message")
                return
            self._request = messages[0]

    def remote_closed(self) -> None:
        """The client sent END_STREAM: no more requests."""
        self._remote_closed = True
        if self.ended:
            return
        if self._requests is not None:
            self._requests.put_nowait(None)
            return
        if self._request is None or self.reader.partial:
            self.finish(INTERNAL, "Expected one request message")
            return
        self._run_unary(self._request)

    def reset(self) -> None:
        """The client reset the stream or the connection is gone: nothing more is sent."""
        self._end()
        if self.task is not None:
            self.task.cancel()

    # -- running the handler --------------------------------------------------------------------

    def _run_unary(self, payload: bytes) -> None:
        method = self.method
        try:
            request = method.decode(payload) if method.decode is not None else payload
        except Exception:
            self.finish(INTERNAL, DESERIALIZE_FAILED)
            return
        started = eager.start(method.handler(request, self))
        if isinstance(started, eager.Finished):
            if started.error is None:
                self.respond(started.value)
            else:
                self._failed(started.error)
            return
        self.task = started
        started.add_done_callback(self._unary_done)

    def _unary_done(self, task: asyncio.Task) -> None:
        self.task = None
        if task.cancelled():
            self._failed(asyncio.CancelledError())
        elif task.exception() is not None:
            self._failed(task.exception())
        else:
            self.respond(task.result())
        self.connection.flush()

    def respond(self, response: Any) -> None:
        """The unary answer: head, message and status, written together."""
        if self.ended:
            return
        encode = self.method.encode
        try:
            payload = encode(response) if encode is not None else response
        except Exception as exc:  # a handler's answer that does not serialize: the call still ends
            self._failed(exc)
            return
        self.send(payload)
        self.finish(OK)

    async def _run_stream(self) -> None:
        method = self.method
        try:
            async for response in method.handler(self._stream_requests(), self):
                self.send(method.encode(response) if method.encode is not None else response)
                self.connection.flush()
                await self._writable()
        except BaseException as exc:  # noqa: BLE001 - every way out ends the call
            self._failed(exc)
        else:
            self.finish(OK)
        self.connection.flush()

    async def _stream_requests(self) -> AsyncIterator[Any]:
        requests = self._requests
        while True:
            message = await requests.get()
            if message is None:
                return
            yield message

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, Abort):
            self.finish(exc.code.value[0], exc.details)
        elif isinstance(exc, asyncio.CancelledError):
            if self._expired:
                self.finish(DEADLINE_EXCEEDED, "Deadline Exceeded")
            else:
                self.finish(CANCELLED, "Cancelled")
        else:
            self.connection.log_failure(self, exc)
            self.finish(grpc.StatusCode.UNKNOWN.value[0], f"Unexpected {type(exc).__name__}: {exc}")

    def _expire(self) -> None:
        self._deadline = None
        if self.ended:
            return
        self._expired = True
        if self.task is not None:
            self.task.cancel()  # ends the call with DEADLINE_EXCEEDED
        else:
            self.finish(DEADLINE_EXCEEDED, "Deadline Exceeded")
            self.connection.flush()

    # -- writing --------------------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """One response message, after the response head (sent with the first)."""
        if self.ended:
            return
        connection = self.connection
        connection.forgive_pings()
        if not self._head_sent:
            self._head_sent = True
            connection.h2.send_headers(self.stream_id, connection.response_head(self.response_encoding))
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        if self.response_encoding is None and len(payload) > COPY_LIMIT:  # no copy: the prefix goes alone
            pending.append(memoryview(len(payload).to_bytes(5, "big")))
            pending.append(memoryview(payload))
        else:
            pending.append(memoryview(frame(payload, self.response_encoding)))
        self.pump()

    def finish(self, code: int, details: str = "") -> None:
        """End the call with this status; the trailers follow any response bytes still held back."""
        if self.ended:
            return
        connection = self.connection
        connection.forgive_pings()
        trailers = status_headers(code, details)
        if not self._head_sent:  # trailers-only
            self._head_sent = True
            self._end()
            connection.h2.send_headers(self.stream_id, connection.response_head(None) + trailers, end_stream=True)
            self._close_remote()
            return
        self._trailers = trailers
        self.ended = True
        self.pump()

    def pump(self) -> None:
        """Send what the flow-control windows allow; the trailers once everything is out."""
        pending = self._pending
        h2 = self.connection.h2
        stream_id = self.stream_id
        if pending is not None:
            while pending:
                window = h2.local_flow_control_window(stream_id)
                if window <= 0:
                    return
                piece = pending[0]
                size = min(window, h2.max_outbound_frame_size, len(piece))
                h2.send_data(stream_id, piece[:size])  # a view: no copy
                if size == len(piece):
                    pending.popleft()
                else:
                    pending[0] = piece[size:]
            self._pending = None
        if self._drained is not None:
            self._drained.set()
        if self._trailers is not None:
            trailers, self._trailers = self._trailers, None
            self._end()
            h2.send_headers(stream_id, trailers, end_stream=True)
            self._close_remote()

    async def _writable(self) -> None:
        """Wait until this call's responses are out and the connection takes more."""
        if self._pending is not None:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()
        await self.connection.writable()

    def _end(self) -> None:
        self.ended = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.connection.ended(self)

    def _close_remote(self) -> None:
        """A call ended before the client's side did: the client need not send the rest (as grpc does)."""
        if not self._remote_closed:
            self.connection.reset_stream(self.stream_id)
