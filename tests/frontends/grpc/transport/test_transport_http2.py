"""transport/http2.py without I/O: an ``Http2Connection`` fed the bytes of an h2 client (or frames built by
hand), its handler calls recorded, and its output read back by the h2 client, which checks that what we
write is correct HTTP/2. Covers the preface and settings, requests and responses, header blocks split
over CONTINUATION frames, padding and priority, the header (de)compression caches, flow control both
ways, stream states and resets, MAX_CONCURRENT_STREAMS, PING, GOAWAY and malformed input."""

from __future__ import annotations

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, HeadersFrame, PriorityFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlite.frontends.grpc.transport import http2

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame types and flags as RFC 9113 numbers them (not taken from the module under test)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

CLIENT_CONFIG = H2Configuration(client_side=True, header_encoding=None)
OPTIONS = {
    "stream_window": 100_000,
    "connection_window": 1_000_000,
    "max_frame": 65_536,
    "max_streams": 100,
    "max_header_list": 16_384,
}
DEFAULT_WINDOW = 65_535
REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Call"), (b":authority", b"localhost")]
HEAD = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-accept-encoding", b"identity,gzip")]


class Recorder:
    """An ``http2.Handler`` that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def request_received(self, stream_id: int, headers: http2.Headers, ended: bool) -> None:
        self.calls.append(("request", stream_id, [tuple(header) for header in headers], ended))

    def stream_data(self, stream_id: int, data: bytes, ended: bool) -> None:
        self.calls.append(("data", stream_id, bytes(data), ended))

    def stream_reset(self, stream_id: int) -> None:
        self.calls.append(("reset", stream_id))

    def window_opened(self) -> None:
        self.calls.append(("window",))

    def ping_received(self) -> None:
        self.calls.append(("ping",))

    def ping_acknowledged(self) -> None:
        self.calls.append(("ping_ack",))

    def client_gone(self) -> None:
        self.calls.append(("gone",))

    def of(self, kind: str) -> list[tuple]:
        return [call for call in self.calls if call[0] == kind]


def raw(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame built by hand."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame in ``data`` (which must hold whole frames)."""
    out = []
    while data:
        assert len(data) >= 9, "a cut frame header"
        length = int.from_bytes(data[:3], "big")
        assert len(data) >= 9 + length, "a cut frame"
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + length]))
        data = data[9 + length :]
    return out


def setting(key: int, value: int) -> bytes:
    return key.to_bytes(2, "big") + value.to_bytes(4, "big")


class Pair:
    """Our server connection and an h2 client; with ``handshake`` both prefaces and SETTINGS (and their
    ACKs) have been exchanged, and nothing recorded so far is kept."""

    def __init__(self, handshake: bool = True, **options: int) -> None:
        self.handler = Recorder()
        self.server = http2.Http2Connection(self.handler, **{**OPTIONS, **options})
        self.client = H2Connection(config=CLIENT_CONFIG)
        self.client.initiate_connection()
        self.events: list = []
        self.encoder = hpack.Encoder()  # for header blocks built by hand (when the h2 client sends none)
        if handshake:
            self.exchange()
            self.handler.calls.clear()
            self.events.clear()

    def send(self) -> None:
        """What the client has queued, to the server."""
        self.server.receive(self.client.data_to_send())

    def read(self) -> list:
        """What the server has queued, to the client; the client's events."""
        events = self.client.receive_data(self.server.data_to_send())
        self.events += events
        return events

    def exchange(self) -> None:
        """Both ways until neither side has anything to say."""
        for _ in range(10):
            outgoing = self.client.data_to_send()
            if outgoing:
                self.server.receive(outgoing)
            incoming = self.server.data_to_send()
            if not outgoing and not incoming:
                return
            if incoming:
                self.events += self.client.receive_data(incoming)
        raise AssertionError("the two sides never went quiet")

    def request(self, headers: list | None = None, body: bytes | None = None, end: bool = True) -> int:
        """A request by the h2 client, delivered to the server; its stream id."""
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers or REQUEST, end_stream=end and body is None)
        if body is not None:
            self.client.send_data(stream_id, body, end_stream=end)
        self.send()
        return stream_id

    def block(self, headers: list) -> bytes:
        return self.encoder.encode(headers)

    def raw_request(self, stream_id: int, headers: list | None = None, end: bool = True) -> bytes:
        """A HEADERS frame by hand (its block from ``self.encoder``)."""
        flags = END_HEADERS | (END_STREAM if end else 0)
        return raw(HEADERS, flags, stream_id, self.block(headers or REQUEST))

    def out(self) -> list[tuple[int, int, int, bytes]]:
        return frames(self.server.data_to_send())

    def fails(self, data: bytes, code: int | tuple[int, ...]) -> tuple[int, bytes]:
        """``data`` breaks the protocol: ConnectionError, a GOAWAY with ``code`` (or one of them; its last
        stream id and debug data are returned) and the connection takes nothing more."""
        with pytest.raises(http2.ConnectionError):
            self.server.receive(data)
        assert self.server.closed
        goaways = [f for f in self.out() if f[0] == GOAWAY]
        assert len(goaways) == 1, goaways
        payload = goaways[0][3]
        assert int.from_bytes(payload[4:8], "big") in (code if isinstance(code, tuple) else (code,))
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        assert last == self.server.last_stream_id
        calls = len(self.handler.calls)
        self.server.receive(raw(PING, 0, 0, b"12345678"))  # ignored once closed
        assert self.server.data_to_send() == b""
        assert len(self.handler.calls) == calls
        return last, payload[8:]


def of(events: list, kind: type) -> list:
    return [event for event in events if isinstance(event, kind)]


# -- the handshake -------------------------------------------------------------------------------


def test_the_first_output_is_our_settings_and_a_connection_window_update():
    pair = Pair(handshake=False)
    out = pair.server.data_to_send()
    assert out[3] == SETTINGS and out[4] == 0 and out[5:9] == b"\0\0\0\0"  # SETTINGS first, as the preface
    assert [f[0] for f in frames(out)] == [SETTINGS, WINDOW_UPDATE]
    events = pair.client.receive_data(out)
    (changed,) = of(events, RemoteSettingsChanged)
    values = {key: change.new_value for key, change in changed.changed_settings.items()}
    assert values == {
        SettingCodes.INITIAL_WINDOW_SIZE: OPTIONS["stream_window"],
        SettingCodes.MAX_FRAME_SIZE: OPTIONS["max_frame"],
        SettingCodes.MAX_CONCURRENT_STREAMS: OPTIONS["max_streams"],
        SettingCodes.ENABLE_PUSH: 0,
        SettingCodes.MAX_HEADER_LIST_SIZE: OPTIONS["max_header_list"],
    }
    (update,) = of(events, WindowUpdated)
    assert (update.stream_id, update.delta) == (0, OPTIONS["connection_window"] - DEFAULT_WINDOW)
    assert pair.client.outbound_flow_control_window == OPTIONS["connection_window"]


def test_no_connection_window_update_when_the_window_is_the_default():
    pair = Pair(handshake=False, connection_window=DEFAULT_WINDOW)
    assert [f[0] for f in frames(pair.server.data_to_send())] == [SETTINGS]


def test_the_clients_settings_are_acknowledged():
    pair = Pair(handshake=False)
    pair.read()
    pair.send()  # the preface, the client's SETTINGS and its ACK of ours
    out = pair.server.data_to_send()
    assert frames(out) == [(SETTINGS, ACK, 0, b"")]
    assert of(pair.client.receive_data(out), SettingsAcknowledged)
    assert pair.handler.calls == []


def test_a_bad_preface_is_a_protocol_error():
    pair = Pair(handshake=False)
    pair.server.data_to_send()
    pair.fails(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", ErrorCodes.PROTOCOL_ERROR)


def test_a_bad_preface_fails_before_it_is_complete():
    pair = Pair(handshake=False)
    pair.server.data_to_send()
    pair.server.receive(PREFACE[:10])  # so far so good
    assert not pair.server.closed
    pair.fails(b"X", ErrorCodes.PROTOCOL_ERROR)


def test_a_preface_byte_by_byte_works():
    pair = Pair(handshake=False)
    pair.read()
    for byte in pair.client.data_to_send():
        pair.server.receive(bytes((byte,)))
    assert of(pair.read(), SettingsAcknowledged)
    sid = pair.request(body=b"hi")
    assert pair.handler.calls == [("request", sid, REQUEST, False), ("data", sid, b"hi", True)]


def test_a_first_frame_that_is_not_settings_is_a_protocol_error():
    pair = Pair(handshake=False)
    with pytest.raises(http2.ConnectionError):
        pair.server.receive(PREFACE + raw(PING, 0, 0, b"12345678"))
    events = pair.read()
    (terminated,) = of(events, ConnectionTerminated)
    assert terminated.error_code == ErrorCodes.PROTOCOL_ERROR
    assert terminated.last_stream_id == 0
    assert pair.handler.calls == []


# -- requests and responses --------------------------------------------------------------------


def test_a_request_gives_its_headers_then_its_data():
    pair = Pair()
    metadata = [(b"content-type", b"application/grpc"), (b"x-key", b"value"), (b"x-bin", b"\x00\xff")]
    sid = pair.request(REQUEST + metadata, body=b"payload")
    assert pair.handler.calls == [("request", sid, REQUEST + metadata, False), ("data", sid, b"payload", True)]
    assert pair.server.last_stream_id == sid


def test_a_request_without_a_body_ends_with_its_headers():
    pair = Pair()
    sid = pair.request()
    assert pair.handler.calls == [("request", sid, REQUEST, True)]


def _client_bytes() -> bytes:
    client = H2Connection(config=CLIENT_CONFIG)
    client.initiate_connection()
    client.send_headers(1, REQUEST + [(b"x-a", b"1")])
    client.send_data(1, b"first part")
    client.send_data(1, b"second", end_stream=True)
    client.send_headers(3, REQUEST + [(b"x-a", b"1"), (b"x-b", b"2" * 300)])
    client.send_data(3, b"x" * 5000)
    client.send_headers(3, [(b"x-trailer", b"t")], end_stream=True)
    client.ping(b"pingpong")
    client.send_headers(5, REQUEST, end_stream=True)
    client.reset_stream(5)
    return client.data_to_send()


CLIENT_BYTES = _client_bytes()


def _feed(chunks: list[bytes]) -> tuple[list[tuple], bytes]:
    handler = Recorder()
    server = http2.Http2Connection(handler, **OPTIONS)
    out = server.data_to_send()
    for chunk in chunks:
        server.receive(chunk)
        out += server.data_to_send()
    return handler.calls, out


WHOLE_CALLS, WHOLE_OUT = _feed([CLIENT_BYTES])


def test_the_reference_feed_saw_everything():
    assert WHOLE_CALLS == [
        ("request", 1, REQUEST + [(b"x-a", b"1")], False),
        ("data", 1, b"first part", False),
        ("data", 1, b"second", True),
        ("request", 3, REQUEST + [(b"x-a", b"1"), (b"x-b", b"2" * 300)], False),
        ("data", 3, b"x" * 5000, False),
        ("data", 3, b"", True),
        ("ping",),
        ("request", 5, REQUEST, True),
        ("reset", 5),
    ]


@FUZZ
@given(st.lists(st.integers(1, len(CLIENT_BYTES) - 1), unique=True, max_size=40))
def test_a_request_split_anywhere_gives_the_same_calls_and_output(cuts):
    cuts = [0, *sorted(cuts), len(CLIENT_BYTES)]
    calls, out = _feed([CLIENT_BYTES[a:b] for a, b in zip(cuts, cuts[1:], strict=False)])
    assert calls == WHOLE_CALLS
    assert out == WHOLE_OUT


def test_receiving_nothing_does_nothing():
    pair = Pair()
    pair.server.receive(b"")
    assert (pair.handler.calls, pair.server.data_to_send()) == ([], b"")


def test_a_response_head_data_and_trailers_reach_the_client():
    pair = Pair()
    sid = pair.request(body=b"q")
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"response bytes")
    pair.server.send_data(sid, memoryview(b"and a view"))
    pair.server.send_headers(sid, [(b"grpc-status", b"0"), (b"grpc-message", b"fine")], end_stream=True)
    events = pair.read()
    kinds = [type(event) for event in events]
    assert kinds == [ResponseReceived, DataReceived, DataReceived, TrailersReceived, StreamEnded]
    assert events[0].headers == HEAD
    assert b"".join(e.data for e in of(events, DataReceived)) == b"response bytes" + b"and a view"
    assert events[3].headers == [(b"grpc-status", b"0"), (b"grpc-message", b"fine")]
    assert all(event.stream_id == sid for event in events)


def test_data_with_end_stream_ends_the_response():
    pair = Pair()
    sid = pair.request()
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"last", end_stream=True)
    events = pair.read()
    assert [type(event) for event in events] == [ResponseReceived, DataReceived, StreamEnded]
    assert sid not in pair.server.streams


def test_a_header_block_larger_than_a_frame_goes_out_in_continuation_frames():
    pair = Pair()
    sid = pair.request()
    message = bytes(range(256)).hex().encode() * 110  # 56 kB: Huffman codes hex digits in 4-6 bits
    trailers = [(b"grpc-status", b"13"), (b"grpc-message", message)]
    pair.server.send_headers(sid, HEAD)
    pair.server.send_headers(sid, trailers, end_stream=True)
    out = pair.server.data_to_send()
    sent = frames(out)
    limit = pair.server.max_outbound_frame_size
    assert [f[0] for f in sent[1:]] == [HEADERS] + [CONTINUATION] * (len(sent) - 2)
    assert len(sent) >= 4  # the head, then HEADERS and at least two CONTINUATIONs
    assert all(len(payload) <= limit for _, _, _, payload in sent)
    assert sent[1][1] == END_STREAM  # END_STREAM on the HEADERS, END_HEADERS on the last CONTINUATION only
    assert [f[1] for f in sent[2:]] == [0] * (len(sent) - 3) + [END_HEADERS]
    events = pair.client.receive_data(out)
    (received,) = of(events, TrailersReceived)
    assert received.headers == trailers
    assert of(events, StreamEnded)


def test_a_header_block_follows_a_larger_max_frame_size_of_the_client():
    pair = Pair()
    pair.client.update_settings({SettingCodes.MAX_FRAME_SIZE: 100_000})
    pair.exchange()
    sid = pair.request()
    message = bytes(range(256)).hex().encode() * 80
    pair.server.send_headers(sid, [*HEAD, (b"x-big", message)], end_stream=True)
    out = pair.server.data_to_send()
    assert [(f[0], f[1]) for f in frames(out)] == [(HEADERS, END_STREAM | END_HEADERS)]
    assert of(pair.client.receive_data(out), ResponseReceived)[0].headers == [*HEAD, (b"x-big", message)]


# -- header blocks from the client: CONTINUATION, padding, priority --------------------------------


def test_a_header_block_in_headers_and_continuation_frames_is_one_request():
    pair = Pair()
    headers = REQUEST + [(b"x-long", b"v" * 300), (b"x-other", b"w" * 200)]
    block = pair.block(headers)
    parts = [block[:10], block[10:200], block[200:]]
    pair.server.receive(raw(HEADERS, END_STREAM, 1, parts[0]))
    pair.server.receive(raw(CONTINUATION, 0, 1, parts[1]))
    assert pair.handler.calls == []  # nothing until the block is whole
    pair.server.receive(raw(CONTINUATION, END_HEADERS, 1, parts[2]))
    assert pair.handler.calls == [("request", 1, headers, True)]
    pair.server.receive(pair.raw_request(3))  # the connection goes on
    assert pair.handler.calls[-1] == ("request", 3, REQUEST, True)


def test_a_continuation_without_headers_is_a_protocol_error():
    pair = Pair()
    pair.fails(raw(CONTINUATION, END_HEADERS, 1, pair.block(REQUEST)), ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.calls == []


@pytest.mark.parametrize(
    "between",
    [
        raw(PING, 0, 0, b"12345678"),
        raw(DATA, 0, 1, b"x"),
        raw(0x42, 0, 0, b"an unknown type"),
        raw(CONTINUATION, END_HEADERS, 3, b"\x82"),  # a CONTINUATION of another stream
    ],
    ids=["ping", "data", "unknown", "other-stream"],
)
def test_another_frame_inside_a_header_block_is_a_protocol_error(between):
    pair = Pair()
    block = pair.block(REQUEST)
    pair.server.receive(raw(HEADERS, 0, 1, block[:5]))
    pair.fails(between + raw(CONTINUATION, END_HEADERS, 1, block[5:]), ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.calls == []


def test_padded_headers_and_data_are_unpadded():
    pair = Pair()
    headers = pair.block(REQUEST + [(b"x-a", b"1")])
    pair.server.receive(HeadersFrame(1, data=headers, flags=["END_HEADERS", "PADDED"], pad_length=17).serialize())
    pair.server.receive(DataFrame(1, data=b"body", flags=["PADDED"], pad_length=200).serialize())
    pair.server.receive(raw(DATA, PADDED | END_STREAM, 1, b"\x00" + b"tail"))  # zero padding
    assert pair.handler.calls == [
        ("request", 1, REQUEST + [(b"x-a", b"1")], False),
        ("data", 1, b"body", False),
        ("data", 1, b"tail", True),
    ]


def test_padding_counts_against_the_flow_control_windows():
    pair = Pair(stream_window=1000, connection_window=DEFAULT_WINDOW)
    pair.server.receive(pair.raw_request(1, end=False))
    pair.server.receive(DataFrame(1, data=b"d" * 10, flags=["PADDED"], pad_length=250).serialize())
    pair.server.receive(DataFrame(1, data=b"d" * 10, flags=["PADDED"], pad_length=250).serialize())
    # 2 * (1 + 10 + 250) = 522 bytes of the 1000-byte stream window: over half, so it is given back
    assert [(f[0], f[2], int.from_bytes(f[3], "big")) for f in pair.out()] == [(WINDOW_UPDATE, 1, 522)]


@pytest.mark.parametrize(
    "frame",
    [
        raw(DATA, PADDED, 1, b"\x05abc"),  # 5 bytes of padding in a 4-byte frame
        raw(DATA, PADDED, 1, b"\x04abc"),  # the padding would take the pad length byte too
        raw(DATA, PADDED, 1, b""),  # no room for the pad length
        raw(HEADERS, PADDED | END_HEADERS, 3, b"\x09\x82\x86"),
    ],
    ids=["data-longer", "data-equal", "data-empty", "headers"],
)
def test_padding_longer_than_the_frame_is_a_protocol_error(frame):
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    pair.handler.calls.clear()
    pair.fails(frame, ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.of("data") == [] and pair.handler.of("request") == []


def test_headers_with_priority_are_read():
    pair = Pair()
    first = pair.block(REQUEST + [(b"x-a", b"1")])
    second = pair.block(REQUEST + [(b"x-a", b"2")])
    pair.server.receive(
        HeadersFrame(1, data=first, flags=["END_HEADERS", "END_STREAM", "PRIORITY"], depends_on=0, stream_weight=200)
        .serialize()
    )  # fmt: skip
    pair.server.receive(
        HeadersFrame(
            3, data=second, flags=["END_HEADERS", "PRIORITY", "PADDED"], pad_length=7, depends_on=1,
            stream_weight=1, exclusive=True,
        ).serialize()
    )  # fmt: skip
    third = pair.block(REQUEST + [(b"x-a", b"3")])
    priority = b"\x80\x00\x00\x03\xff"  # exclusive, on stream 3, weight 256
    pair.server.receive(raw(HEADERS, PRIORITY_FLAG | END_HEADERS | END_STREAM, 5, priority + third))
    assert pair.handler.calls == [
        ("request", 1, REQUEST + [(b"x-a", b"1")], True),
        ("request", 3, REQUEST + [(b"x-a", b"2")], False),
        ("request", 5, REQUEST + [(b"x-a", b"3")], True),
    ]


def test_a_priority_frame_is_ignored():
    pair = Pair()
    pair.server.receive(PriorityFrame(1, depends_on=0, stream_weight=10).serialize())  # an idle stream
    pair.server.receive(PriorityFrame(7, depends_on=1, stream_weight=10, exclusive=True).serialize())
    assert (pair.handler.calls, pair.server.data_to_send()) == ([], b"")
    pair.server.receive(pair.raw_request(1))  # PRIORITY opened nothing: stream 1 is still new
    assert pair.handler.calls == [("request", 1, REQUEST, True)]


# -- the decoder's cache -------------------------------------------------------------------------


def test_a_header_block_sent_twice_decodes_the_same():
    pair = Pair()
    encoder, reference = hpack.Encoder(), hpack.Decoder()
    headers = REQUEST + [(b"x-a", b"1")]
    first, second = encoder.encode(headers), encoder.encode(headers)
    assert first != second and all(byte & 0x80 for byte in second)  # the second is indexed only
    for sid, block in [(1, first), (3, second), (5, second), (7, second)]:
        pair.server.receive(raw(HEADERS, END_HEADERS | END_STREAM, sid, block))
        assert pair.handler.calls[-1] == ("request", sid, headers, True)
        assert reference.decode(block, raw=True) == headers


def test_a_cached_block_decodes_anew_after_the_table_changed():
    """The same bytes mean other headers once an entry has been inserted: index 62 is the newest entry."""
    pair = Pair()
    encoder, reference = hpack.Encoder(), hpack.Decoder()
    indexed = None
    sid = 1
    blocks = []
    for headers in ([(b"x-a", b"1")], [(b"x-a", b"1")], None, [(b"x-b", b"2")], None, [(b"x-c", b"3")], None, None):
        if headers is None:
            block = indexed  # the same bytes once more
        else:
            block = encoder.encode(REQUEST + headers)
            if indexed is None and all(byte & 0x80 for byte in block):
                indexed = block
        blocks.append(block)
    for block in blocks:
        pair.server.receive(raw(HEADERS, END_HEADERS | END_STREAM, sid, block))
        expected = [tuple(header) for header in reference.decode(block, raw=True)]
        assert pair.handler.calls[-1] == ("request", sid, expected, True)
        sid += 2
    seen = [call[2][-1] for call in pair.handler.calls]
    assert seen == [
        (b"x-a", b"1"), (b"x-a", b"1"), (b"x-a", b"1"), (b"x-b", b"2"), (b"x-b", b"2"), (b"x-c", b"3"),
        (b"x-c", b"3"), (b"x-c", b"3"),
    ]  # fmt: skip


def test_a_dynamic_table_size_update_in_a_block_is_applied_even_when_cached():
    pair = Pair()
    encoder, reference = hpack.Encoder(), hpack.Decoder()
    blocks = [encoder.encode(REQUEST + [(b"x-a", b"1")]), encoder.encode(REQUEST + [(b"x-a", b"1")])]
    encoder.header_table_size = 0  # the client empties its table: the next block says so
    blocks.append(encoder.encode(REQUEST + [(b"x-a", b"1")]))
    encoder.header_table_size = 4096
    blocks += [encoder.encode(REQUEST + [(b"x-b", b"2")]), blocks[1]]  # blocks[1] now means x-b: 2
    for index, block in enumerate(blocks):
        pair.server.receive(raw(HEADERS, END_HEADERS | END_STREAM, 2 * index + 1, block))
    expected = [[tuple(h) for h in reference.decode(block, raw=True)] for block in blocks]
    assert [call[2] for call in pair.handler.calls] == expected
    assert expected[-1][-1] == (b"x-b", b"2")


def test_table_size_updates_in_repeated_blocks_are_applied_every_time():
    """Blocks that only resize the (empty) table leave its entries alone but not its size: one taken from
    the cache must still resize it, or a later insertion is kept by one side only."""
    pair = Pair()
    reference = hpack.Decoder()
    shrink, grow = b"\x20\x83", b"\x3f\xe1\x1f\x83"  # size 0, then 4096; each with :method POST
    other_shrink = b"\x20\x82"  # size 0 with :method GET
    insert, probe = b"\x83" + _literal(b"x-a", b"1"), b"\x83\xbe"  # then index 62: x-a
    for index, block in enumerate([shrink, grow, other_shrink, grow, insert, probe]):
        pair.server.receive(raw(HEADERS, END_HEADERS | END_STREAM, 2 * index + 1, block))
        expected = [tuple(header) for header in reference.decode(block, raw=True)]
        assert pair.handler.calls[-1] == ("request", 2 * index + 1, expected, True)
    assert pair.handler.calls[-1][2] == [(b":method", b"POST"), (b"x-a", b"1")]


def _literal(name: bytes, value: bytes) -> bytes:
    """A literal field with incremental indexing and a new name (RFC 7541 6.2.1), without Huffman."""
    return b"\x40" + bytes((len(name),)) + name + bytes((len(value),)) + value


def test_a_block_that_inserts_a_duplicate_entry_is_not_taken_from_the_cache():
    """HPACK lets an encoder insert a field that is already in the table (RFC 7541 2.3.2: duplicates are
    legal). Here every entry is 34 bytes, 120 fill the 4096-byte table, and a block inserting (x, v)
    evicts the oldest entry: the count and the newest entry stay the same though the table changed."""
    pair = Pair()
    reference = hpack.Decoder()
    e, g = (b"x", b"v"), (b"y", b"w")
    fill = _literal(*e) * 118 + _literal(*g) + _literal(*e)  # newest first: e, g, e * 118
    again = _literal(*e)
    probe = bytes((0x80 | 64,))  # indexed: the third-newest entry
    for sid, block in [(1, fill), (3, again), (5, again), (7, probe)]:
        pair.server.receive(raw(HEADERS, END_HEADERS | END_STREAM, sid, block))
        expected = [tuple(header) for header in reference.decode(block, raw=True)]
        assert pair.handler.calls[-1] == ("request", sid, expected, True)
    assert pair.handler.calls[-1][2] == [e]  # the table is e, e, e, g, ...: we decoded g


METADATA = st.lists(
    st.tuples(
        st.sampled_from([b"x-a", b"x-b", b"x-long", b"user-agent"]),
        st.sampled_from([b"1", b"2", b"three", b"v" * 700, b"w" * 1500]),
    ),
    max_size=4,
)


@FUZZ
@given(st.lists(METADATA, min_size=1, max_size=12))
def test_every_request_decodes_to_what_the_h2_client_sent(metadatas):
    """Repeated and new metadata (the 700 and 1500 byte values evict entries of the 4096-byte table)."""
    pair = Pair()
    for metadata in metadatas:
        sid = pair.request(REQUEST + metadata)
        assert pair.handler.calls[-1] == ("request", sid, REQUEST + metadata, True)


# -- the encoder's cache and the client's header table size -----------------------------------------


def _open_streams(pair: Pair, count: int) -> list[int]:
    return [pair.request() for _ in range(count)]


@FUZZ
@given(st.lists(st.integers(0, 4), min_size=1, max_size=20))
def test_a_constant_head_interleaved_with_new_literals_always_decodes(choices):
    pair = Pair()
    sids = _open_streams(pair, len(choices))
    expected = {}
    for n, (sid, choice) in enumerate(zip(sids, choices, strict=True)):
        if choice == 0:  # a new literal value: the encoder's table changes
            head = [*HEAD, (b"x-n", str(n).encode() * 20)]
        elif choice == 1:  # a big value: evicts entries
            head = [*HEAD, (b"x-big", str(n).encode() * 1500)]
        else:
            head = HEAD  # the same list object
        expected[sid] = head
        pair.server.send_headers(sid, head)
        pair.server.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    events = pair.read()
    assert {e.stream_id: e.headers for e in of(events, ResponseReceived)} == expected
    assert len(of(events, StreamEnded)) == len(sids)


def test_a_constant_head_is_sent_as_the_same_short_block_while_the_table_is_unchanged():
    pair = Pair()
    sids = _open_streams(pair, 3)
    blocks = []
    for sid in sids:
        pair.server.send_headers(sid, HEAD, end_stream=True)
        (sent,) = pair.out()
        blocks.append(sent[3])
    assert blocks[1] == blocks[2]
    assert len(blocks[1]) == len(HEAD)  # one indexed byte per field


def test_a_cached_head_is_encoded_anew_after_a_big_field_refilled_the_table():
    pair = Pair()
    sids = _open_streams(pair, 4)
    constant = [(b":status", b"200"), (b"y", b"2")]
    lists = [
        [(b":status", b"200"), (b"z", b"3"), (b"y", b"2"), (b"x", b"1")],  # the table: x, y, z
        constant,  # y is indexed: cached
        [(b":status", b"200"), (b"big", b"A" * 5000), (b"w", b"5"), (b"v", b"4"), (b"x", b"1")],  # x, v, w
        constant,  # y is gone: its cached bytes now name v
    ]
    for sid, headers in zip(sids, lists, strict=True):
        pair.server.send_headers(sid, headers, end_stream=True)
    received = {e.stream_id: e.headers for e in of(pair.read(), ResponseReceived)}
    assert received == dict(zip(sids, lists, strict=True))


def test_a_smaller_header_table_size_from_the_client_is_honoured():
    pair = Pair()
    sids = _open_streams(pair, 7)
    pair.server.send_headers(sids[0], HEAD, end_stream=True)
    pair.read()
    for index, size in [(1, 0), (3, 100), (5, 4096)]:
        pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: size})
        pair.exchange()  # the server applies it and ACKs
        pair.server.send_headers(sids[index], HEAD, end_stream=True)
        out = pair.server.data_to_send()
        block = frames(out)[0][3]
        assert _size_update(block) == size  # it starts with a dynamic table size update (RFC 7541 4.2)
        events = pair.client.receive_data(out)
        assert of(events, ResponseReceived)[0].headers == HEAD
        literal = [*HEAD, (b"x-new", str(size).encode())]
        pair.server.send_headers(sids[index + 1], literal, end_stream=True)
        assert of(pair.read(), ResponseReceived)[0].headers == literal


def _size_update(block: bytes) -> int | None:
    """The new size of a dynamic table size update that starts ``block`` (RFC 7541 6.3), else None."""
    if block[0] & 0xE0 != 0x20:
        return None
    value = block[0] & 0x1F
    if value < 31:
        return value
    shift, index = 0, 1
    while True:
        value += (block[index] & 0x7F) << shift
        if not block[index] & 0x80:
            return value
        shift, index = shift + 7, index + 1


def test_the_same_smaller_header_table_size_twice_still_sends_the_size_update():
    pair = Pair()
    sid = pair.request()
    pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 100})
    pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 100})
    pair.exchange()
    pair.server.send_headers(sid, HEAD, end_stream=True)
    events = pair.read()  # h2: "Encoder did not shrink table size to within the max"
    assert of(events, ResponseReceived)[0].headers == HEAD


# -- flow control: what we send ------------------------------------------------------------------


def test_the_clients_default_window_limits_what_we_send():
    pair = Pair()
    sid = pair.request()
    assert pair.server.local_flow_control_window(sid) == DEFAULT_WINDOW
    assert pair.server.local_flow_control_window(99) == 0  # no such stream
    pair.server.send_headers(sid, HEAD)
    left = DEFAULT_WINDOW
    while left:
        size = min(left, pair.server.max_outbound_frame_size)
        pair.server.send_data(sid, b"d" * size)
        left -= size
    assert pair.server.local_flow_control_window(sid) == 0
    events = pair.read()  # h2 checks we kept within its windows
    assert sum(e.flow_controlled_length for e in of(events, DataReceived)) == DEFAULT_WINDOW
    other = pair.request()
    assert pair.server.local_flow_control_window(other) == 0  # the connection's window is spent too
    pair.handler.calls.clear()

    pair.client.increment_flow_control_window(1000, stream_id=sid)
    pair.send()
    assert pair.handler.calls == [("window",)]
    assert pair.server.local_flow_control_window(sid) == 0  # the connection's window still is 0
    pair.client.increment_flow_control_window(5000)
    pair.send()
    assert pair.handler.calls == [("window",), ("window",)]
    assert pair.server.local_flow_control_window(sid) == 1000
    assert pair.server.local_flow_control_window(other) == 5000


def test_acknowledged_data_opens_the_windows():
    pair = Pair()
    sid = pair.request()
    pair.server.send_headers(sid, HEAD)
    for size in (16_384, 16_384, 16_384, 16_383):
        pair.server.send_data(sid, b"d" * size)
    assert pair.server.local_flow_control_window(sid) == 0
    events = pair.read()
    for event in of(events, DataReceived):
        pair.client.acknowledge_received_data(event.flow_controlled_length, sid)
    pair.send()
    assert pair.handler.of("window")
    assert pair.server.local_flow_control_window(sid) > 0
    assert pair.server.local_flow_control_window(sid) == pair.client.remote_flow_control_window(sid)


def test_the_clients_initial_window_size_moves_open_streams_by_the_difference():
    pair = Pair()
    pair.client.increment_flow_control_window(1_000_000)  # the connection's window out of the way
    pair.send()
    sid = pair.request()
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"d" * 5000)
    pair.read()
    assert pair.server.local_flow_control_window(sid) == DEFAULT_WINDOW - 5000
    pair.handler.calls.clear()

    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 200_000})
    pair.send()
    assert pair.server.local_flow_control_window(sid) == 200_000 - 5000
    assert pair.handler.calls == [("window",)]
    new = pair.request()
    assert pair.server.local_flow_control_window(new) == 200_000

    pair.handler.calls.clear()
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 3000})
    pair.send()
    assert pair.server.local_flow_control_window(sid) == 3000 - 5000  # below zero: nothing may be sent
    assert pair.server.local_flow_control_window(new) == 3000
    assert pair.handler.calls == []  # a window that shrank opened nothing
    pair.exchange()
    assert pair.server.local_flow_control_window(sid) == pair.client.remote_flow_control_window(sid)


def test_max_outbound_frame_size_follows_the_client():
    pair = Pair()
    assert pair.server.max_outbound_frame_size == 16_384
    pair.client.update_settings({SettingCodes.MAX_FRAME_SIZE: 70_000, SettingCodes.INITIAL_WINDOW_SIZE: 1_000_000})
    pair.client.increment_flow_control_window(1_000_000)
    pair.exchange()
    assert pair.server.max_outbound_frame_size == 70_000
    sid = pair.request()
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"d" * 70_000, end_stream=True)
    events = pair.read()  # h2 refuses a frame over the size it allows
    assert [len(e.data) for e in of(events, DataReceived)] == [70_000]


# -- flow control: what the client sends ---------------------------------------------------------


def test_data_beyond_the_connection_window_is_a_flow_control_error():
    pair = Pair(connection_window=100_000, stream_window=500_000, max_frame=200_000)
    pair.server.receive(pair.raw_request(1, end=False) + pair.raw_request(3, end=False))
    pair.server.receive(raw(DATA, 0, 1, b"a" * 100_000))  # exactly the window
    assert pair.handler.calls[-1] == ("data", 1, b"a" * 100_000, False)
    given_back = sum(int.from_bytes(f[3], "big") for f in pair.out() if f[0] == WINDOW_UPDATE and f[2] == 0)
    pair.fails(raw(DATA, 0, 3, b"b" * (given_back + 1)), ErrorCodes.FLOW_CONTROL_ERROR)
    assert pair.handler.calls[-1][1] == 1


def test_one_frame_beyond_the_connection_window_is_a_flow_control_error():
    pair = Pair(connection_window=100_000, stream_window=500_000, max_frame=200_000)
    pair.server.receive(pair.raw_request(1, end=False))
    pair.fails(raw(DATA, 0, 1, b"a" * 100_001), ErrorCodes.FLOW_CONTROL_ERROR)
    assert pair.handler.of("data") == []


def test_a_connection_window_below_the_default_still_takes_the_default():
    pair = Pair(connection_window=10_000, stream_window=DEFAULT_WINDOW)
    sid = pair.request(body=b"a" * 16_000)  # within the 65535 bytes every connection starts with
    assert pair.handler.calls[-1] == ("data", sid, b"a" * 16_000, True)


def test_window_updates_come_as_data_arrives():
    pair = Pair(stream_window=40_000, connection_window=100_000)
    one = pair.request(end=False)
    three = pair.request(end=False)
    for _ in range(5):
        pair.client.send_data(one, b"a" * 5000)
    pair.send()
    updates = [(e.stream_id, e.delta) for e in of(pair.read(), WindowUpdated)]
    assert updates == [(one, 20_000)]  # half the stream window; the connection's 25 000 is under half
    for _ in range(6):
        pair.client.send_data(three, b"b" * 5000)
    pair.send()
    updates = [(e.stream_id, e.delta) for e in of(pair.read(), WindowUpdated)]
    assert updates == [(three, 20_000), (0, 50_000)]
    assert pair.client.local_flow_control_window(one) == 40_000 - 25_000 + 20_000
    assert pair.client.local_flow_control_window(three) == 40_000 - 30_000 + 20_000
    assert pair.client.outbound_flow_control_window == 100_000 - 55_000 + 50_000
    assert sum(len(call[2]) for call in pair.handler.of("data")) == 55_000


def test_data_beyond_a_streams_window_resets_that_stream_only():
    pair = Pair(stream_window=1000)
    pair.server.receive(pair.raw_request(1, end=False))
    pair.server.receive(raw(DATA, 0, 1, b"a" * 1001))
    assert (RST_STREAM, 0, 1, ErrorCodes.FLOW_CONTROL_ERROR.to_bytes(4, "big")) in pair.out()
    assert 1 not in pair.server.streams
    assert pair.handler.of("data") == []
    pair.server.receive(pair.raw_request(3))
    assert pair.handler.calls[-1] == ("request", 3, REQUEST, True)


@pytest.mark.parametrize(
    "frame",
    [
        raw(DATA, 0, 1, b"a" * 1001),
        raw(WINDOW_UPDATE, 0, 1, b"\0\0\0\0"),
        raw(WINDOW_UPDATE, 0, 1, b"\x7f\xff\xff\xff"),
    ],
    ids=["stream-window-overrun", "zero-increment", "window-overflow"],
)
def test_a_stream_the_server_resets_for_an_error_is_reported_to_the_handler(frame):
    pair = Pair(stream_window=1000)
    pair.server.receive(pair.raw_request(1, end=False))
    pair.server.receive(frame)
    assert [f[0] for f in pair.out()] == [RST_STREAM]
    assert pair.handler.calls[-1] == ("reset", 1)


def test_a_frame_larger_than_our_max_frame_size_is_a_frame_size_error():
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    header = (OPTIONS["max_frame"] + 1).to_bytes(3, "big") + bytes((DATA, 0)) + (1).to_bytes(4, "big")
    pair.fails(header, ErrorCodes.FRAME_SIZE_ERROR)  # known from its header: the payload is not awaited
    assert pair.handler.of("data") == []


def test_a_frame_of_exactly_our_max_frame_size_is_taken():
    pair = Pair(stream_window=1_000_000)
    pair.server.receive(pair.raw_request(1, end=False))
    pair.server.receive(raw(DATA, END_STREAM, 1, b"x" * OPTIONS["max_frame"]))
    assert pair.handler.calls[-1] == ("data", 1, b"x" * OPTIONS["max_frame"], True)


# -- stream states and resets --------------------------------------------------------------------


def test_rst_stream_from_the_client_resets_the_stream():
    pair = Pair()
    sid = pair.request(end=False)
    pair.client.reset_stream(sid, ErrorCodes.CANCEL)
    pair.send()
    assert pair.handler.calls[-1] == ("reset", sid)
    assert sid not in pair.server.streams
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"late", end_stream=True)
    assert pair.server.data_to_send() == b""
    pair.server.receive(raw(RST_STREAM, 0, sid, b"\0\0\0\x08"))  # a second one: nothing to reset
    assert pair.handler.of("reset") == [("reset", sid)]


def test_rst_stream_on_an_idle_stream_is_a_protocol_error():
    pair = Pair()
    pair.fails(raw(RST_STREAM, 0, 5, b"\0\0\0\x08"), ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.calls == []


def test_data_on_an_idle_stream_is_a_protocol_error():
    pair = Pair()
    sid = pair.request()
    pair.fails(raw(DATA, 0, sid + 2, b"x"), ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.of("data") == []


@pytest.mark.parametrize(
    "frame",
    [raw(DATA, 0, 2, b"x"), raw(RST_STREAM, 0, 2, b"\0\0\0\x08"), raw(WINDOW_UPDATE, 0, 2, b"\0\0\0\x01")],
    ids=["data", "rst_stream", "window_update"],
)
def test_frames_on_an_even_stream_id_are_a_protocol_error(frame):
    pair = Pair()
    for _ in range(3):
        pair.request()
    pair.fails(frame, ErrorCodes.PROTOCOL_ERROR)


def test_data_after_end_stream_resets_that_stream_and_the_connection_goes_on():
    pair = Pair()
    sid = pair.request(body=b"done")
    pair.server.receive(raw(DATA, 0, sid, b"more"))
    assert pair.handler.of("data") == [("data", sid, b"done", True)]
    (reset,) = of(pair.read(), StreamReset)
    assert (reset.stream_id, reset.error_code) == (sid, ErrorCodes.STREAM_CLOSED)
    assert sid not in pair.server.streams
    other = pair.request(body=b"next")
    assert pair.handler.calls[-1] == ("data", other, b"next", True)


def test_data_in_flight_on_a_stream_we_reset_is_dropped():
    pair = Pair()
    sid = pair.request(end=False)
    pair.server.reset_stream(sid, ErrorCodes.CANCEL)
    pair.server.data_to_send()  # the RST_STREAM has not reached the client yet
    pair.client.send_data(sid, b"in flight")
    pair.client.send_data(sid, b"", end_stream=True)
    pair.send()
    assert pair.handler.calls == [("request", sid, REQUEST, False)]
    assert pair.server.data_to_send() == b""
    other = pair.request()
    assert pair.handler.calls[-1] == ("request", other, REQUEST, True)


def test_trailers_in_flight_on_a_stream_we_reset_are_dropped():
    pair = Pair()
    sid = pair.request(body=b"some", end=False)
    pair.server.reset_stream(sid, ErrorCodes.CANCEL)
    pair.server.data_to_send()  # the RST_STREAM has not reached the client yet
    pair.client.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    pair.send()
    other = pair.request()
    assert pair.handler.calls[-1] == ("request", other, REQUEST, True)


@pytest.mark.parametrize("stream_id", [2, 4])
def test_an_even_stream_id_in_headers_is_a_protocol_error(stream_id):
    pair = Pair()
    pair.fails(pair.raw_request(stream_id), ErrorCodes.PROTOCOL_ERROR)
    assert pair.handler.calls == []


def test_a_decreasing_stream_id_in_headers_is_a_connection_error():
    """Stream 3 was skipped, so it is closed (RFC 9113 5.1.1): PROTOCOL_ERROR or STREAM_CLOSED may say so."""
    pair = Pair()
    pair.server.receive(pair.raw_request(5))
    pair.handler.calls.clear()
    with pytest.raises(http2.ConnectionError):
        pair.server.receive(pair.raw_request(3))
    (goaway,) = [f for f in pair.out() if f[0] == GOAWAY]
    assert int.from_bytes(goaway[3][4:8], "big") in (ErrorCodes.PROTOCOL_ERROR, ErrorCodes.STREAM_CLOSED)
    assert int.from_bytes(goaway[3][:4], "big") == 5
    assert pair.handler.calls == []


def test_headers_reopening_a_finished_stream_is_stream_closed():
    pair = Pair()
    pair.server.receive(pair.raw_request(1))
    pair.server.send_headers(1, HEAD, end_stream=True)
    assert 1 not in pair.server.streams
    pair.fails(pair.raw_request(1), ErrorCodes.STREAM_CLOSED)


def test_reset_stream_sends_rst_stream_and_later_sends_are_no_ops():
    pair = Pair()
    sid = pair.request(end=False)
    pair.server.send_headers(sid, HEAD)
    pair.server.reset_stream(sid, ErrorCodes.CANCEL)
    assert sid not in pair.server.streams
    assert pair.server.local_flow_control_window(sid) == 0
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"late")
    pair.server.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    pair.server.reset_stream(sid)  # a second reset sends nothing
    events = pair.read()
    assert [type(e) for e in events] == [ResponseReceived, StreamReset]
    assert (events[1].stream_id, events[1].error_code) == (sid, ErrorCodes.CANCEL)
    assert pair.server.data_to_send() == b""


def test_a_stream_closed_by_the_client_then_by_us_is_forgotten():
    pair = Pair(max_streams=1)
    sid = pair.request(body=b"q")
    assert sid in pair.server.streams
    pair.server.send_headers(sid, HEAD)
    pair.server.send_data(sid, b"r")
    assert sid in pair.server.streams
    pair.server.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    assert sid not in pair.server.streams
    pair.read()
    other = pair.request()
    assert pair.handler.calls[-1] == ("request", other, REQUEST, True)  # not refused: the slot is free


@pytest.mark.parametrize("how", ["data", "trailers"])
def test_a_stream_closed_by_us_then_by_the_client_is_forgotten(how):
    pair = Pair(max_streams=1)
    sid = pair.request(end=False)
    pair.server.send_headers(sid, [*HEAD, (b"grpc-status", b"0")], end_stream=True)
    pair.read()
    if how == "data":
        pair.client.send_data(sid, b"", end_stream=True)
    else:
        pair.client.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    pair.send()
    assert pair.handler.calls[-1] == ("data", sid, b"", True)
    assert sid not in pair.server.streams
    other = pair.request()
    assert pair.handler.calls[-1] == ("request", other, REQUEST, True)


def test_client_trailers_end_the_stream():
    pair = Pair()
    sid = pair.request(body=b"abc", end=False)
    pair.client.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    pair.send()
    assert pair.handler.calls == [
        ("request", sid, REQUEST, False),
        ("data", sid, b"abc", False),
        ("data", sid, b"", True),
    ]
    pair.server.send_headers(sid, HEAD, end_stream=True)
    assert sid not in pair.server.streams  # both sides are done


def test_a_second_header_block_without_end_stream_is_a_protocol_error():
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    pair.fails(raw(HEADERS, END_HEADERS, 1, pair.block([(b"x-t", b"1")])), ErrorCodes.PROTOCOL_ERROR)


def test_headers_after_end_stream_are_a_connection_error():
    """HEADERS on a half-closed (remote) stream: a stream error STREAM_CLOSED, which an endpoint may make a
    connection error (RFC 9113 5.1, 5.4.1)."""
    pair = Pair()
    pair.server.receive(pair.raw_request(1))
    frame = raw(HEADERS, END_HEADERS | END_STREAM, 1, pair.block([(b"x-t", b"1")]))
    pair.fails(frame, (ErrorCodes.PROTOCOL_ERROR, ErrorCodes.STREAM_CLOSED))


# -- MAX_CONCURRENT_STREAMS ----------------------------------------------------------------------


def test_streams_beyond_max_streams_are_refused():
    pair = Pair(max_streams=2)
    pair.server.receive(pair.raw_request(1, end=False) + pair.raw_request(3, end=False))
    third = pair.raw_request(5, REQUEST + [(b"x-new", b"inserted")], end=False)  # decoded all the same
    pair.server.receive(third)
    assert [call[1] for call in pair.handler.of("request")] == [1, 3]
    assert pair.out() == [(RST_STREAM, 0, 5, ErrorCodes.REFUSED_STREAM.to_bytes(4, "big"))]
    assert set(pair.server.streams) == {1, 3}
    pair.server.receive(raw(DATA, END_STREAM, 5, b"in flight"))  # on the refused stream: dropped
    assert pair.handler.of("data") == [] and pair.server.data_to_send() == b""
    pair.server.reset_stream(1)
    pair.server.data_to_send()
    pair.server.receive(pair.raw_request(7, REQUEST + [(b"x-new", b"inserted")]))  # indexed: the table kept it
    assert pair.handler.calls[-1] == ("request", 7, REQUEST + [(b"x-new", b"inserted")], True)


# -- PING ----------------------------------------------------------------------------------------


def test_a_ping_is_answered_with_the_same_bytes():
    pair = Pair()
    pair.client.ping(b"abcdefgh")
    pair.send()
    assert pair.handler.calls == [("ping",)]
    (ack,) = of(pair.read(), PingAckReceived)
    assert ack.ping_data == b"abcdefgh"


def test_a_ping_ack_is_reported():
    pair = Pair()
    pair.server.receive(raw(PING, ACK, 0, b"12345678"))
    assert pair.handler.calls == [("ping_ack",)]
    assert pair.server.data_to_send() == b""  # an ACK is not answered


def test_our_ping_reaches_the_client_and_its_ack_comes_back():
    pair = Pair()
    pair.server.ping(b"12345678")
    (ping,) = of(pair.read(), PingReceived)
    assert ping.ping_data == b"12345678"
    pair.send()  # h2 acknowledged it
    assert pair.handler.calls == [("ping_ack",)]


@pytest.mark.parametrize("payload", [b"", b"1234567", b"123456789"])
def test_a_ping_of_the_wrong_length_is_a_frame_size_error(payload):
    pair = Pair()
    pair.fails(raw(PING, 0, 0, payload), ErrorCodes.FRAME_SIZE_ERROR)
    assert pair.handler.calls == []


def test_a_ping_on_a_stream_is_a_protocol_error():
    pair = Pair()
    pair.fails(raw(PING, 0, 1, b"12345678"), ErrorCodes.PROTOCOL_ERROR)


# -- GOAWAY --------------------------------------------------------------------------------------


def test_goaway_from_the_client_is_reported():
    pair = Pair()
    pair.request()
    pair.client.close_connection(ErrorCodes.NO_ERROR)
    pair.send()
    assert pair.handler.calls[-1] == ("gone",)


@pytest.mark.parametrize("last", [None, 1])
def test_our_goaway_reaches_the_client(last):
    pair = Pair()
    for _ in range(3):
        pair.request()
    pair.server.go_away(ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings", last_stream_id=last)
    (terminated,) = of(pair.read(), ConnectionTerminated)
    assert terminated.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert terminated.additional_data == b"too_many_pings"
    assert terminated.last_stream_id == (5 if last is None else last)


def test_a_plain_goaway_says_no_error():
    pair = Pair()
    pair.server.go_away()
    (terminated,) = of(pair.read(), ConnectionTerminated)
    assert (terminated.error_code, terminated.last_stream_id, terminated.additional_data) == (0, 0, None)


# -- other frames and malformed input ------------------------------------------------------------


def test_unknown_frame_types_are_ignored():
    pair = Pair()
    sid = pair.request(end=False)
    pair.server.receive(raw(0x0A, 0, 0, b"altsvc-ish") + raw(0xFE, 0xFF, sid, b"x" * 100) + raw(0x20, 0, 99, b""))
    assert pair.handler.calls == [("request", sid, REQUEST, False)]
    assert pair.server.data_to_send() == b""
    pair.client.send_data(sid, b"still", end_stream=True)
    pair.send()
    assert pair.handler.calls[-1] == ("data", sid, b"still", True)


def test_push_promise_from_a_client_is_a_protocol_error():
    pair = Pair()
    sid = pair.request(end=False)
    pair.fails(raw(PUSH_PROMISE, END_HEADERS, sid, b"\0\0\0\x02" + pair.block(REQUEST)), ErrorCodes.PROTOCOL_ERROR)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (raw(WINDOW_UPDATE, 0, 0, b"\0\0\x01"), ErrorCodes.FRAME_SIZE_ERROR),
        (raw(WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), ErrorCodes.PROTOCOL_ERROR),
        (raw(WINDOW_UPDATE, 0, 0, b"\x7f\xff\xff\xff"), ErrorCodes.FLOW_CONTROL_ERROR),
        (raw(WINDOW_UPDATE, 0, 9, b"\0\0\0\x01"), ErrorCodes.PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 1), ErrorCodes.PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, b"\0\x04\0\0"), ErrorCodes.FRAME_SIZE_ERROR),
        (raw(SETTINGS, ACK, 0, setting(4, 1)), ErrorCodes.FRAME_SIZE_ERROR),
        (raw(SETTINGS, 0, 0, setting(4, 2**31)), ErrorCodes.FLOW_CONTROL_ERROR),
        (raw(SETTINGS, 0, 0, setting(5, 16_383)), ErrorCodes.PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, setting(5, 2**24)), ErrorCodes.PROTOCOL_ERROR),
        (raw(SETTINGS, 0, 0, setting(2, 2)), ErrorCodes.PROTOCOL_ERROR),
        (raw(HEADERS, END_HEADERS, 0, b"\x82"), ErrorCodes.PROTOCOL_ERROR),
        (raw(DATA, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),
        (raw(RST_STREAM, 0, 0, b"\0\0\0\x08"), ErrorCodes.PROTOCOL_ERROR),
        (raw(PRIORITY, 0, 0, b"\0\0\0\x01\x10"), ErrorCodes.PROTOCOL_ERROR),
        (raw(HEADERS, END_HEADERS, 3, b"\x80"), ErrorCodes.COMPRESSION_ERROR),  # index 0
        (raw(HEADERS, END_HEADERS, 3, b"\xff\xff\xff\xff\x0f"), ErrorCodes.COMPRESSION_ERROR),
        (raw(HEADERS, END_HEADERS, 3, b"\x3f\xe1\x7f"), ErrorCodes.COMPRESSION_ERROR),  # table size over 4096
        pytest.param(
            raw(RST_STREAM, 0, 1, b"\0\0\0\x08\0"),
            ErrorCodes.FRAME_SIZE_ERROR,
            id="rst-stream-length",
        ),
        pytest.param(
            raw(PRIORITY, 0, 1, b"\0\0\0"),
            ErrorCodes.FRAME_SIZE_ERROR,
            id="priority-length",
        ),
    ],
    ids=[
        "window-update-length", "window-update-zero", "window-overflow", "window-update-idle", "settings-on-stream",
        "settings-length", "settings-ack-payload", "initial-window-too-big", "max-frame-too-small",
        "max-frame-too-big", "enable-push-2", "headers-stream-0", "data-stream-0", "rst-stream-0", "priority-stream-0",
        "hpack-index-0", "hpack-integer-overflow", "hpack-table-too-big", "rst-stream-length", "priority-length",
    ],
)  # fmt: skip
def test_malformed_frames_are_connection_errors(frame, code):
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    pair.fails(frame, code)


def test_a_header_block_growing_without_end_is_enhance_your_calm():
    pair = Pair(max_header_list=1000)
    pair.server.receive(raw(HEADERS, 0, 1, b"\x82"))
    with pytest.raises(http2.ConnectionError):
        for _ in range(10):
            pair.server.receive(raw(CONTINUATION, 0, 1, b"\x82" * 1000))
    (goaway,) = [f for f in pair.out() if f[0] == GOAWAY]
    assert int.from_bytes(goaway[3][4:8], "big") == ErrorCodes.ENHANCE_YOUR_CALM
    assert pair.handler.calls == []


def test_a_header_list_over_the_limit_is_a_connection_error():
    pair = Pair(max_header_list=1000)
    pair.fails(pair.raw_request(1, REQUEST + [(b"x-big", b"v" * 2000)]), ErrorCodes.COMPRESSION_ERROR)
    assert pair.handler.calls == []


def test_an_initial_window_size_that_overflows_a_stream_window_is_a_flow_control_error():
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    pair.server.receive(raw(WINDOW_UPDATE, 0, 1, (2**31 - 1 - DEFAULT_WINDOW).to_bytes(4, "big")))
    pair.fails(raw(SETTINGS, 0, 0, setting(4, DEFAULT_WINDOW + 1)), ErrorCodes.FLOW_CONTROL_ERROR)


FRAME = st.tuples(
    st.integers(0, 12),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 7, 2**31 - 1, 2**32 - 1]),
    st.binary(max_size=40),
)


def _after_handshake(data: bytes) -> Pair:
    pair = Pair()
    pair.server.receive(pair.raw_request(1, end=False))
    try:
        pair.server.receive(data)
    except http2.ConnectionError:
        assert pair.server.closed
        assert GOAWAY in [f[0] for f in frames(pair.server.data_to_send())]
    pair.server.data_to_send()
    return pair


@FUZZ
@given(st.binary(max_size=120))
def test_random_bytes_only_ever_raise_connection_error(data):
    _after_handshake(data)


@FUZZ
@given(st.lists(FRAME, max_size=8))
def test_random_frames_only_ever_raise_connection_error(parts):
    data = b"".join(
        len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload
        for kind, flags, sid, payload in parts
    )
    _after_handshake(data)
