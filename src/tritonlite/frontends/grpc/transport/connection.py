"""One client connection: ``http2.Http2Connection`` reads and writes HTTP/2; this maps its streams to calls.

Everything runs on the event loop. Reads are answered in one write where possible: a unary call whose
handler answers at once (a cheap model run inline) is written with the rest of that read's output.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from typing import Protocol

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport import http2
from tritonlite.frontends.grpc.transport.call import Call, Method
from tritonlite.frontends.grpc.transport.framing import (
    ACCEPT_ENCODING,
    UNIMPLEMENTED,
    UNKNOWN,
    WBITS,
    MessageReader,
    status_headers,
    timeout_seconds,
)

log = logging.getLogger(__name__)

STREAM_WINDOW = 4 * 1024 * 1024  # what a client may send on a stream before it waits for us
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_FRAME = 1024 * 1024
MAX_STREAMS = 4096  # a client's calls beyond this wait in the client (grpc clients queue them)
MAX_HEADER_LIST = 16 * 1024  # as grpc's default metadata limit
COALESCE_LIMIT = 64 * 1024  # output up to this size is joined into one write; more goes by writelines
# headers that are the transport's, not the call's metadata
TRANSPORT_HEADERS = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"})
NEVER = -math.inf


class Owner(Protocol):
    """What a connection uses of the server that accepted it (``server.GrpcServer``)."""

    methods: dict[bytes, Method]  # by path
    channel: GrpcChannelOptions
    compression: str | None  # the grpc-encoding of infer responses, None for none
    max_message_bytes: int
    connections: set[GrpcConnection]


class GrpcConnection(asyncio.Protocol):
    """The calls of one HTTP/2 connection, by stream id (and the ``http2.Handler`` of its state)."""

    def __init__(self, server: Owner) -> None:
        self.server = server
        self.calls: dict[int, Call] = {}
        self.transport: asyncio.Transport | None = None
        self.h2 = http2.Http2Connection(
            self,
            stream_window=STREAM_WINDOW,
            connection_window=CONNECTION_WINDOW,
            max_frame=MAX_FRAME,
            max_streams=MAX_STREAMS,
            max_header_list=MAX_HEADER_LIST,
        )
        self._writable: asyncio.Event | None = None
        self._closing = False
        self._timers: list[asyncio.TimerHandle] = []
        self._ping_timeout: asyncio.TimerHandle | None = None
        self._last_ping = NEVER
        self._ping_strikes = 0

    # -- the transport's callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.server.connections.add(self)
        self.flush()
        self._start_timers()

    def data_received(self, data: bytes) -> None:
        try:
            self.h2.receive(data)
        except http2.ConnectionError as exc:  # its GOAWAY is queued
            log.debug("gRPC connection closed: %s", exc)
            self.flush()
            self.close()
            return
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for timer in self._timers:
            timer.cancel()
        if self._ping_timeout is not None:
            self._ping_timeout.cancel()
        for call in list(self.calls.values()):
            call.reset()
        if self._writable is not None:
            self._writable.set()  # waiting writers end: their calls were reset

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.Event()
        self._writable.clear()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()

    # -- what the HTTP/2 state reports (http2.Handler) -----------------------------------------

    def request_received(self, stream_id: int, headers: http2.Headers, ended: bool) -> None:
        self._open(stream_id, headers)
        if ended:
            call = self.calls.get(stream_id)
            if call is not None:
                call.remote_closed()

    def stream_data(self, stream_id: int, data: bytes, ended: bool) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            if data:
                call.received(data)
            if ended:
                call.remote_closed()

    def stream_reset(self, stream_id: int) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            call.reset()

    def window_opened(self) -> None:
        for call in list(self.calls.values()):
            call.pump()

    def ping_received(self) -> None:
        """grpc's ping-abuse policy: pings closer than allowed are strikes; too many end the connection."""
        settings = self.server.channel
        now = asyncio.get_running_loop().time()
        idle = not self.calls and not settings.keepalive_permit_without_calls
        interval = 7200.0 if idle else settings.http2_min_recv_ping_interval_without_data_ms / 1000
        allowed = self._last_ping + interval
        self._last_ping = now
        if allowed <= now:
            return
        self._ping_strikes += 1
        if settings.http2_max_ping_strikes and self._ping_strikes > settings.http2_max_ping_strikes:
            self.h2.go_away(http2.ENHANCE_YOUR_CALM, b"too_many_pings")
            self.flush()
            self.close()

    def ping_acknowledged(self) -> None:
        if self._ping_timeout is not None:
            self._ping_timeout.cancel()
            self._ping_timeout = None

    def client_gone(self) -> None:
        """The client's GOAWAY: it opens no more streams; the connection closes when its calls end."""
        self._closing = True
        if not self.calls:
            self.close()

    # -- what calls use -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the HTTP/2 state has queued."""
        out = self.h2.take_output()
        if not out or self.transport.is_closing():
            return
        if len(out) == 1:
            self.transport.write(out[0])
        elif sum(map(len, out)) <= COALESCE_LIMIT:  # small frames (a unary answer): one write
            self.transport.write(b"".join(out))
        else:  # big payloads among them: gathered by the transport, not copied here
            self.transport.writelines(out)

    async def writable(self) -> None:
        """Wait while the transport's buffer is full."""
        if self._writable is not None and not self._writable.is_set():
            await self._writable.wait()

    def forgive_pings(self) -> None:
        """As grpc: sending a call's HEADERS or DATA wipes the client's ping strikes."""
        self._ping_strikes, self._last_ping = 0, NEVER

    def response_head(self, encoding: str | None) -> list[tuple[bytes, bytes]]:
        return RESPONSE_HEADS[encoding]  # constant lists: their compressed form is reused

    def ended(self, call: Call) -> None:
        self.calls.pop(call.stream_id, None)
        if self._closing and not self.calls:
            asyncio.get_running_loop().call_soon(self.close)

    def reset_stream(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id, http2.NO_ERROR)

    def log_failure(self, call: Call, exc: BaseException) -> None:
        log.error("gRPC call on stream %d failed", call.stream_id, exc_info=exc)

    # -- streams --------------------------------------------------------------------------------

    def _open(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._closing:  # opened after our GOAWAY: refused unprocessed, so the client may retry it elsewhere
            self.h2.reset_stream(stream_id, http2.REFUSED_STREAM)
            return
        path = content_type = timeout = encoding = accept = None
        metadata = []
        for name, value in headers:
            if name[:1] == b":":
                if name == b":path":
                    path = value
            elif name in TRANSPORT_HEADERS:
                if name == b"content-type":
                    content_type = value
                elif name == b"grpc-timeout":
                    timeout = value
                elif name == b"grpc-encoding":
                    encoding = value
                elif name == b"grpc-accept-encoding":
                    accept = value
            else:
                metadata.append(_metadatum(name, value))
        if content_type is None or not content_type.startswith(b"application/grpc"):
            self._refuse(stream_id, UNKNOWN, "Content-Type missing or invalid", status=b"415")
            return
        method = self.server.methods.get(path)
        if method is None:
            self._refuse(stream_id, UNIMPLEMENTED, "")
            return
        request_encoding = None
        if encoding is not None and encoding != b"identity":
            request_encoding = encoding.decode("latin-1")
            if request_encoding not in WBITS:
                self._refuse(stream_id, UNIMPLEMENTED, f"Compression algorithm '{request_encoding}' is not supported")
                return
        response_encoding = self.server.compression if method.compressed else None
        if response_encoding is not None and (accept is None or response_encoding.encode() not in accept.split(b",")):
            response_encoding = None
        seconds = timeout_seconds(timeout) if timeout is not None else None
        reader = MessageReader(request_encoding, self.server.max_message_bytes)
        call = Call(self, stream_id, method, tuple(metadata), reader, response_encoding, seconds)
        if not call.ended:
            self.calls[stream_id] = call

    def _refuse(self, stream_id: int, code: int, details: str, status: bytes = b"200") -> None:
        head = [(b":status", status), (b"content-type", b"application/grpc"), *status_headers(code, details)]
        self.h2.send_headers(stream_id, head, end_stream=True)
        self.reset_stream(stream_id)

    # -- keepalive, pings, connection age -------------------------------------------------------

    def _start_timers(self) -> None:
        settings = self.server.channel
        loop = asyncio.get_running_loop()
        if settings.keepalive_time_ms > 0:
            self._timers.append(loop.call_later(settings.keepalive_time_ms / 1000, self._keepalive))
        if settings.max_connection_age_ms is not None:
            self._timers.append(loop.call_later(settings.max_connection_age_ms / 1000, self._too_old))

    def _keepalive(self) -> None:
        """Ping the client; without an answer within keepalive_timeout the connection is dropped."""
        settings = self.server.channel
        loop = asyncio.get_running_loop()
        if self.calls or settings.keepalive_permit_without_calls:
            self.h2.ping(b"tlkeepal")
            self.flush()
            if self._ping_timeout is None:
                self._ping_timeout = loop.call_later(settings.keepalive_timeout_ms / 1000, self.close)
        self._timers.append(loop.call_later(settings.keepalive_time_ms / 1000, self._keepalive))

    def _too_old(self) -> None:
        """max_connection_age: no new calls; those running get max_connection_age_grace."""
        grace = self.server.channel.max_connection_age_grace_ms
        self.go_away()
        if grace is not None:
            self._timers.append(asyncio.get_running_loop().call_later(grace / 1000, self.close))

    def go_away(self) -> None:
        """Tell the client to open no more streams here; the connection closes when its calls end."""
        if self._closing or self.transport is None or self.transport.is_closing():
            return
        self._closing = True
        self.h2.go_away(http2.NO_ERROR)
        self.flush()
        if not self.calls:
            self.close()

    def close(self) -> None:
        """Drop the connection; its calls end unanswered (their handlers are cancelled)."""
        for call in list(self.calls.values()):
            call.reset()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _metadatum(name: bytes, value: bytes) -> tuple[str, str | bytes]:
    key = name.decode("latin-1")
    if key.endswith("-bin"):
        try:
            return key, base64.b64decode(value + b"==")
        except ValueError:  # not base64: passed on as sent
            return key, value
    return key, value.decode("latin-1")


RESPONSE_HEAD = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", ACCEPT_ENCODING),
]
RESPONSE_HEADS = {None: RESPONSE_HEAD} | {
    encoding: [*RESPONSE_HEAD, (b"grpc-encoding", encoding.encode())] for encoding in WBITS
}
