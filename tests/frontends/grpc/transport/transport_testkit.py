"""What the transport tests share: an event loop in a thread that runs a ``GrpcServer``, and a raw
HTTP/2 client (h2 over a plain socket) that sees the frames the server writes."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import DataFrame, HeadersFrame

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport.call import Method
from tritonlite.frontends.grpc.transport.framing import frame
from tritonlite.frontends.grpc.transport.server import GrpcServer

# tests/frontends holds tls_material (the certificates the TLS tests make); pytest puts it on sys.path
# only when it collects a test module there
FRONTEND_TESTS = str(Path(__file__).resolve().parents[2])
if FRONTEND_TESTS not in sys.path:
    sys.path.append(FRONTEND_TESTS)
from tls_material import TlsFiles, make_tls_files  # noqa: E402, F401 - for test_transport_server

WAIT = 5.0  # seconds any one wait in a test may take before it counts as a hang


class LoopThread:
    """An asyncio event loop running in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="transport-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine, timeout: float = WAIT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


class Served:
    """A started GrpcServer on 127.0.0.1 and the loop thread it runs on."""

    def __init__(self, loop: LoopThread, server: GrpcServer) -> None:
        self.loop = loop
        self.server = server
        self.port = server.port
        self.address = f"127.0.0.1:{server.port}"
        self.stopped = False

    def stop(self, grace: float | None = None, timeout: float = WAIT) -> None:
        self.stopped = True
        self.loop.run(self.server.stop(grace), timeout)


@contextlib.contextmanager
def serving(
    methods: dict[str, Method],
    channel: GrpcChannelOptions | None = None,
    ssl_context: Any = None,
    max_message_bytes: int = 2**31 - 1,
) -> Iterator[Served]:
    """A GrpcServer for ``methods`` on a free port, stopped (and its loop closed) on the way out."""
    loop = LoopThread()
    try:
        server = GrpcServer(methods, "127.0.0.1:0", channel, ssl_context, max_message_bytes)
        loop.run(server.start())
        served = Served(loop, server)
        try:
            yield served
        finally:
            if not served.stopped:
                with contextlib.suppress(Exception):
                    served.stop(grace=None)
    finally:
        loop.close()


CLIENT_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None)


class RawClient:
    """An HTTP/2 client by hand: every event h2 reports is kept in ``events``.

    With ``answer=False`` it writes nothing after the connection preface, so neither PING ACKs nor
    SETTINGS ACKs nor WINDOW_UPDATEs go out (a client that stopped answering)."""

    def __init__(self, port: int, answer: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.h2 = h2.connection.H2Connection(config=CLIENT_CONFIG)
        self.h2.initiate_connection()
        self.answer = answer
        self.sock.sendall(self.h2.data_to_send())
        self.events: list[h2.events.Event] = []
        self.eof = False  # the server closed the connection
        self.terminated = False  # a GOAWAY came: h2 reads no more, bytes are still read until EOF
        self.after_goaway = b""  # what came after it, unparsed (see ``frames_after_goaway``)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str,
        messages: list[bytes] | None = None,
        *,
        content_type: bytes = b"application/grpc",
        extra: list[tuple[bytes, bytes]] | None = None,
        end: bool = True,
        send: bool = True,
    ) -> int:
        """Open a stream for ``path``, send ``messages`` (framed) and, with ``end``, END_STREAM."""
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"127.0.0.1"),
            (b"content-type", content_type),
            (b"te", b"trailers"),
            *(extra or []),
        ]
        messages = messages or []
        self.h2.send_headers(stream_id, headers, end_stream=end and not messages)
        for index, message in enumerate(messages):
            self.h2.send_data(stream_id, frame(message), end_stream=end and index == len(messages) - 1)
        if send:
            self.flush()
        return stream_id

    def reset(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.flush()

    def ping(self, data: bytes = b"pingpong", send: bool = True) -> None:
        self.h2.ping(data)
        if send:
            self.flush()

    # -- reading ------------------------------------------------------------------------------

    def read_once(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; False when nothing did (or the connection is closed)."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        if self.terminated:
            self.after_goaway += data
            return True
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.terminated = True
            return True
        for event in events:
            self.events.append(event)
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                with contextlib.suppress(h2.exceptions.StreamClosedError):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = True
        outgoing = self.h2.data_to_send()
        if outgoing and self.answer:
            with contextlib.suppress(OSError):
                self.sock.sendall(outgoing)
        return True

    def frames_after_goaway(self) -> list[tuple[int, int, int]]:
        """(type, flags, stream id) of each whole frame read after the GOAWAY that h2 stopped at."""
        frames, data = [], self.after_goaway
        while len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                break
            frames.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF))
            data = data[9 + length :]
        return frames

    def send_raw_request(self, path: str, message: bytes) -> int:
        """A whole unary request written by hand (HEADERS, DATA with END_STREAM), for when h2 refuses to
        open a stream (after a GOAWAY); returns its stream id."""
        stream_id = self.h2.highest_outbound_stream_id + 2 if self.h2.highest_outbound_stream_id else 1
        self.h2.highest_outbound_stream_id = stream_id
        block = self.h2.encoder.encode(
            [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"127.0.0.1"),
             (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        )  # fmt: skip
        headers = HeadersFrame(stream_id, data=block, flags=["END_HEADERS"])
        body = DataFrame(stream_id, data=frame(message), flags=["END_STREAM"])
        self.sock.sendall(headers.serialize() + body.serialize())
        return stream_id

    def wait_for(
        self, predicate: Callable[[h2.events.Event], bool], timeout: float = WAIT, since: int = 0
    ) -> h2.events.Event:
        """The first event from ``events[since]`` on (kept or to come within ``timeout``) that ``predicate``
        accepts."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"no such event within {timeout}s; events: {self.events!r}, eof={self.eof}")
            self.read_once(left)

    def wait_eof(self, timeout: float = WAIT) -> None:
        """Until the server closes the connection; AssertionError if it does not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the connection is still open after {timeout}s; events: {self.events!r}")
            self.read_once(left)

    def stream_done(self, stream_id: int, timeout: float = WAIT) -> None:
        """Until the stream ends (END_STREAM or RST_STREAM from the server)."""
        self.wait_for(
            lambda e: isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == stream_id,
            timeout,
        )

    def response(self, stream_id: int, timeout: float = WAIT) -> tuple[dict[bytes, bytes], bytes, dict[bytes, bytes]]:
        """The stream's response head, its DATA bytes and its trailers (empty for a trailers-only answer)."""
        self.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id, timeout)
        head: dict[bytes, bytes] = {}
        trailers: dict[bytes, bytes] = {}
        body = b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                head = dict(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return head, body, trailers


def free_listening_socket() -> socket.socket:
    """A socket listening on a free port of 127.0.0.1 (close it when done)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


class BaseHandlers:
    """Handlers the test modules share: ``echo``, and ``slow``, which sleeps the seconds its request
    names (5 for an empty one) and records that it started, was cancelled or finished."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()

    async def echo(self, request: bytes, call) -> bytes:
        return request

    async def slow(self, request: bytes, call) -> bytes:
        self.started.set()
        try:
            await asyncio.sleep(float(request or b"5"))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.finished.set()
        return b"slept"
