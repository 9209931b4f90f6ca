"""The server side of HTTP/2 (RFC 9113) without I/O: bytes in, calls to a handler, bytes out.

Header blocks are (de)compressed by ``hpack``. The rest is kept to what a gRPC server needs: streams
the client opens, flow control both ways, settings, pings, resets and GOAWAY; no server push, no
priorities. A client's error against the protocol raises ``ConnectionError`` after a GOAWAY that
says why is queued. The framing is a few lines of byte slicing: a general-purpose HTTP/2 state
machine costs several times more per call than the rest of a gRPC request.

Repeated header blocks cost no compression work: a block that neither adds to nor changes the
decoder's dynamic table decodes to the same headers next time, and a constant header list the
encoder has indexed encodes to the same bytes while its table stays the same.
"""

from __future__ import annotations

from typing import Protocol

import hpack
import hpack.table

from tritonlite.frontends.grpc.transport.held import Held

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# settings
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = (
    range(1, 7)
)
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB

DEFAULT_WINDOW = 65_535
DEFAULT_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
HEADER_CACHE_LIMIT = 256  # distinct header blocks remembered (a timeout header makes each one new)
RESET_MEMORY = 1024  # stream ids reset lately, whose late frames are ignored

Headers = list[tuple[bytes, bytes]]


class ConnectionError(Exception):  # noqa: A001 - HTTP/2's own term
    """The client broke the protocol: the connection ends (a GOAWAY is queued)."""


class Handler(Protocol):
    """What the connection tells its user, stream by stream."""

    def request_received(self, stream_id: int, headers: Headers, ended: bool) -> None: ...
    def stream_data(self, stream_id: int, data: bytes, ended: bool) -> None: ...
    def stream_reset(self, stream_id: int) -> None: ...
    def window_opened(self) -> None: ...
    def ping_received(self) -> None: ...
    def ping_acknowledged(self) -> None: ...
    def client_gone(self) -> None: ...


class _Stream:
    __slots__ = ("send_window", "receive_window", "consumed", "remote_closed", "local_closed")

    def __init__(self, send_window: int, receive_window: int) -> None:
        self.send_window = send_window
        self.receive_window = receive_window
        self.consumed = 0  # received and not yet given back by WINDOW_UPDATE
        self.remote_closed = False
        self.local_closed = False


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:  # payload: bytes, not a view
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


class Http2Connection:
    """One server connection's HTTP/2 state; ``receive`` takes what the socket read, ``data_to_send``
    gives what to write."""

    def __init__(
        self,
        handler: Handler,
        *,
        stream_window: int,
        connection_window: int,
        max_frame: int,
        max_streams: int,
        max_header_list: int,
    ) -> None:
        self.handler = handler
        self.streams: dict[int, _Stream] = {}
        self.max_outbound_frame_size = DEFAULT_FRAME
        self._max_frame = max_frame
        self._max_streams = max_streams
        self._stream_window = stream_window  # what each new stream may receive
        connection_window = max(connection_window, DEFAULT_WINDOW)  # a connection's window only grows
        self._connection_window = connection_window
        self._receive_window = connection_window  # the connection's, left for the client to use
        self._consumed = 0
        self._send_window = DEFAULT_WINDOW  # the connection's, ours to use
        self._initial_send_window = DEFAULT_WINDOW  # each new stream's, from the client's settings
        self._last_stream = 0
        self._reset_ids: dict[int, None] = {}  # streams we reset lately: what was in flight is dropped
        self._preface = False
        self._settled = False  # the client's first SETTINGS has come
        self._held = Held()  # a frame read in part, waiting for the rest
        self._continuing: tuple[int, int, list[bytes]] | None = None  # HEADERS awaiting CONTINUATION
        self._out: list[bytes] = []
        self._decoder = hpack.Decoder(max_header_list_size=max_header_list)
        self._encoder = hpack.Encoder()
        self._decoded: dict[bytes, tuple[int, Headers]] = {}
        self._decoder_version = 0
        self._encoded: dict[int, tuple[int, Headers, bytes]] = {}
        self._encoder_version = 0
        self.closed = False
        settings = (
            (MAX_CONCURRENT_STREAMS, max_streams),
            (INITIAL_WINDOW_SIZE, stream_window),
            (MAX_FRAME_SIZE, max_frame),
            (ENABLE_PUSH, 0),
            (MAX_HEADER_LIST_SIZE, max_header_list),
        )
        payload = b"".join(key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in settings)
        self._out.append(frame(SETTINGS, 0, 0, payload))
        if connection_window > DEFAULT_WINDOW:
            self._out.append(frame(WINDOW_UPDATE, 0, 0, (connection_window - DEFAULT_WINDOW).to_bytes(4, "big")))

    @property
    def last_stream_id(self) -> int:
        return self._last_stream

    # -- input ----------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Take what was read; the handler hears of each frame's meaning. Raises ConnectionError.

        Frame payloads are views of the bytes read (a frame read in pieces is joined once), so
        tensor bytes reach the handler without a copy here."""
        if self.closed:
            return
        buffer: bytes | memoryview | None = data
        if self._held:
            buffer = self._held.add(data, wait=self._preface)  # a preface in parts is checked as it comes
            if buffer is None:
                return  # the frame under way is not complete yet
        view = memoryview(buffer)
        position, end = 0, len(buffer)
        if not self._preface:
            if end < len(PREFACE):
                if not PREFACE.startswith(bytes(view)):
                    self._fail(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                self._held.keep(view, 0, len(PREFACE))
                return
            if view[: len(PREFACE)] != PREFACE:
                self._fail(PROTOCOL_ERROR, "not an HTTP/2 client preface")
            self._preface = True
            position = len(PREFACE)
        need = 9
        while end - position >= 9:
            length = int.from_bytes(view[position : position + 3], "big")
            if length > self._max_frame:
                self._fail(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if end - position < 9 + length:
                need = 9 + length
                break
            kind = buffer[position + 3]
            flags = buffer[position + 4]
            stream_id = int.from_bytes(view[position + 5 : position + 9], "big") & 0x7FFFFFFF
            start = position + 9
            position = start + length
            self._frame(kind, flags, stream_id, view[start:position])
            if self.closed:
                return
        self._held.keep(view, position, need)

    def _frame(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if self._continuing is not None and kind != CONTINUATION:
            self._fail(PROTOCOL_ERROR, "a header block was not continued")
        if not self._settled and kind != SETTINGS:
            self._fail(PROTOCOL_ERROR, "the first frame was not SETTINGS")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == PING:
            if len(payload) != 8 or stream_id:
                self._fail(FRAME_SIZE_ERROR if len(payload) != 8 else PROTOCOL_ERROR, "bad PING")
            if flags & ACK:
                self.handler.ping_acknowledged()
            else:
                self._out.append(frame(PING, ACK, 0, bytes(payload)))
                self.handler.ping_received()
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == RST_STREAM:
            if len(payload) != 4:
                self._fail(FRAME_SIZE_ERROR, "bad RST_STREAM")
            if not stream_id % 2 or stream_id > self._last_stream:
                self._fail(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            if self.streams.pop(stream_id, None) is not None:
                self.handler.stream_reset(stream_id)
        elif kind == CONTINUATION:
            self._continuation(flags, stream_id, payload)
        elif kind == GOAWAY:
            self.handler.client_gone()
        elif kind == PRIORITY:
            if len(payload) != 5:
                self._fail(FRAME_SIZE_ERROR, "bad PRIORITY")
            if not stream_id:
                self._fail(PROTOCOL_ERROR, "PRIORITY on stream 0")
        elif kind == PUSH_PROMISE:
            self._fail(PROTOCOL_ERROR, "a client does not push")
        # frames of other types are ignored, as the protocol says

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            self._fail(PROTOCOL_ERROR, "HEADERS on stream 0")
        payload = _unpadded(flags, payload, self)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if flags & END_HEADERS:
            self._header_block(flags, stream_id, bytes(payload))
        else:
            self._continuing = (stream_id, flags, [payload])

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        continuing = self._continuing
        if continuing is None or continuing[0] != stream_id:
            self._fail(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        continuing[2].append(payload)
        if sum(map(len, continuing[2])) > 4 * self._decoder.max_header_list_size:
            self._fail(ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self._continuing = None
            self._header_block(continuing[1], stream_id, b"".join(continuing[2]))

    def _header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        headers = self._decode(block)
        ended = bool(flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if not ended or stream.remote_closed:
                self._fail(PROTOCOL_ERROR, "HEADERS after a stream's headers without END_STREAM")
            self._remote_closed(stream_id, stream)
            self.handler.stream_data(stream_id, b"", True)
            return
        if stream_id in self._reset_ids:
            return
        if stream_id <= self._last_stream or not stream_id % 2:
            if stream_id % 2 and stream_id <= self._last_stream:
                self._fail(STREAM_CLOSED, "HEADERS on a closed stream")
            self._fail(PROTOCOL_ERROR, "a client stream id must be odd and increasing")
        self._last_stream = stream_id
        if len(self.streams) >= self._max_streams:
            self._out.append(frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4, "big")))
            return
        stream = self.streams[stream_id] = _Stream(self._initial_send_window, self._stream_window)
        stream.remote_closed = ended
        self.handler.request_received(stream_id, headers, ended)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            self._fail(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._receive_window -= size
        if self._receive_window < 0:
            self._fail(FLOW_CONTROL_ERROR, "the connection's window was overrun")
        self._consumed += size
        if self._consumed >= self._connection_window // 2:
            self._out.append(frame(WINDOW_UPDATE, 0, 0, self._consumed.to_bytes(4, "big")))
            self._receive_window += self._consumed
            self._consumed = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if not stream_id % 2 or stream_id > self._last_stream:
                self._fail(PROTOCOL_ERROR, "DATA on an idle stream")
            if stream is not None:
                self._reset_for_error(stream_id, STREAM_CLOSED)
            return  # a stream ended here: what was in flight is dropped
        stream.receive_window -= size
        if stream.receive_window < 0:
            self._reset_for_error(stream_id, FLOW_CONTROL_ERROR)
            return
        ended = bool(flags & END_STREAM)
        if ended:
            self._remote_closed(stream_id, stream)
        else:
            stream.consumed += size
            if stream.consumed >= self._stream_window // 2:
                self._out.append(frame(WINDOW_UPDATE, 0, stream_id, stream.consumed.to_bytes(4, "big")))
                stream.receive_window += stream.consumed
                stream.consumed = 0
        self.handler.stream_data(stream_id, _unpadded(flags, payload, self), ended)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            self._fail(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                self._fail(PROTOCOL_ERROR, "a window grew by 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                self._fail(FLOW_CONTROL_ERROR, "the connection's window overflowed")
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                if not stream_id % 2 or stream_id > self._last_stream:
                    self._fail(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            if not increment:
                self._reset_for_error(stream_id, PROTOCOL_ERROR)
                return
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._reset_for_error(stream_id, FLOW_CONTROL_ERROR)
                return
        self.handler.window_opened()

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            self._fail(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                self._fail(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            self._fail(FRAME_SIZE_ERROR, "bad SETTINGS")
        self._settled = True
        opened = False
        for offset in range(0, len(payload), 6):
            key = int.from_bytes(payload[offset : offset + 2], "big")
            value = int.from_bytes(payload[offset + 2 : offset + 6], "big")
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    self._fail(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        self._fail(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE overflows a stream's window")
                opened = opened or delta > 0
            elif key == MAX_FRAME_SIZE:
                if not DEFAULT_FRAME <= value <= 2**24 - 1:
                    self._fail(PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self.max_outbound_frame_size = value
            elif key == HEADER_TABLE_SIZE:
                if value != self._encoder.header_table_size:  # setting the same size again loses the update
                    self._encoder.header_table_size = value
                    self._encoder_version += 1
            elif key == ENABLE_PUSH and value > 1:
                self._fail(PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
        self._out.append(frame(SETTINGS, ACK, 0))
        if opened:
            self.handler.window_opened()

    def _decode(self, block: bytes) -> Headers:
        cached = self._decoded.get(block)
        if cached is not None and cached[0] == self._decoder_version:
            return cached[1]
        table = self._decoder.header_table
        before = _table_state(table)
        try:
            headers = self._decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            self._fail(COMPRESSION_ERROR, f"header block: {exc}")
        if not _same_table(before, _table_state(table)):
            self._decoder_version += 1  # the table changed: blocks cached before may mean otherwise now
        else:
            if len(self._decoded) >= HEADER_CACHE_LIMIT:
                self._decoded.clear()
            self._decoded[block] = (self._decoder_version, headers)
        return headers

    # -- output ---------------------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return
        block = self._encode(headers)
        flags = END_STREAM if end_stream else 0
        limit = self.max_outbound_frame_size
        if len(block) <= limit:
            self._out.append(frame(HEADERS, flags | END_HEADERS, stream_id, block))
        else:
            self._out.append(frame(HEADERS, flags, stream_id, block[:limit]))
            for start in range(limit, len(block), limit):
                flag = END_HEADERS if start + limit >= len(block) else 0
                self._out.append(frame(CONTINUATION, flag, stream_id, block[start : start + limit]))
        if end_stream:
            self._closed_locally(stream_id, stream)

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None:
        """DATA within the windows (``local_flow_control_window``) and the client's frame size."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return
        size = len(data)
        stream.send_window -= size
        self._send_window -= size
        head = size.to_bytes(3, "big") + bytes((DATA, END_STREAM if end_stream else 0)) + stream_id.to_bytes(4, "big")
        self._out += (head, data)  # a view: the connection joins small output, writes big output as pieces
        if end_stream:
            self._closed_locally(stream_id, stream)

    def local_flow_control_window(self, stream_id: int) -> int:
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return min(stream.send_window, self._send_window)

    def reset_stream(self, stream_id: int, error_code: int = NO_ERROR) -> None:
        if self.streams.get(stream_id) is not None:
            self._reset(stream_id, error_code)

    def ping(self, opaque: bytes) -> None:
        self._out.append(frame(PING, 0, 0, opaque))

    def go_away(self, error_code: int = NO_ERROR, debug: bytes = b"", last_stream_id: int | None = None) -> None:
        last = self._last_stream if last_stream_id is None else last_stream_id
        self._out.append(frame(GOAWAY, 0, 0, last.to_bytes(4, "big") + error_code.to_bytes(4, "big") + debug))

    def data_to_send(self) -> bytes:
        """What to write, in one piece."""
        return b"".join(self.take_output())

    def take_output(self) -> list[bytes | memoryview]:
        """What to write, as pieces (big DATA payloads stay views: for ``writelines``)."""
        out = self._out
        self._out = []
        return out

    def _encode(self, headers: Headers) -> bytes:
        """``headers`` compressed; a list seen before (the same object) reuses its bytes while the
        encoder's table is unchanged."""
        cached = self._encoded.get(id(headers))
        if cached is not None and cached[0] == self._encoder_version and cached[1] is headers:
            return cached[2]
        table = self._encoder.header_table
        before = _table_state(table)
        block = self._encoder.encode(headers, huffman=True)
        if not _same_table(before, _table_state(table)):
            self._encoder_version += 1
        else:
            if len(self._encoded) >= HEADER_CACHE_LIMIT:
                self._encoded.clear()
            self._encoded[id(headers)] = (self._encoder_version, headers, block)
        return block

    def _closed_locally(self, stream_id: int, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            del self.streams[stream_id]

    def _remote_closed(self, stream_id: int, stream: _Stream) -> None:
        stream.remote_closed = True
        if stream.local_closed:
            del self.streams[stream_id]

    def _reset(self, stream_id: int, error_code: int) -> None:
        self.streams.pop(stream_id, None)
        self._out.append(frame(RST_STREAM, 0, stream_id, error_code.to_bytes(4, "big")))
        reset_ids = self._reset_ids
        reset_ids[stream_id] = None
        if len(reset_ids) > RESET_MEMORY:
            del reset_ids[next(iter(reset_ids))]

    def _reset_for_error(self, stream_id: int, error_code: int) -> None:
        """The client broke the protocol on this stream only: it ends, and the handler hears of it."""
        self._reset(stream_id, error_code)
        self.handler.stream_reset(stream_id)

    def _fail(self, error_code: int, why: str) -> None:
        self.go_away(error_code, why.encode())
        self.closed = True
        raise ConnectionError(why)


def _table_state(table: hpack.table.HeaderTable) -> tuple[int, object, int]:
    entries = table.dynamic_entries
    return len(entries), entries[0] if entries else None, table.maxsize


def _same_table(before: tuple[int, object, int], after: tuple[int, object, int]) -> bool:
    """Whether nothing was added, evicted or resized: hpack makes a new tuple for every entry it adds,
    so the newest entry is compared by identity (a re-added field is equal, not the same)."""
    return before[0] == after[0] and before[1] is after[1] and before[2] == after[2]


def _unpadded(flags: int, payload: bytes, connection: Http2Connection) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        connection._fail(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]
