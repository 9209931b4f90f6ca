"""The gRPC wire format of transport/framing.py: length-prefixed messages (identity, gzip, deflate) cut
out of DATA however it is split, the limits on their size (before and after inflation), the
``grpc-timeout`` header and the percent-encoded status trailers."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlite.frontends.grpc.transport import framing
from tritonlite.frontends.grpc.transport.framing import (
    INTERNAL,
    RESOURCE_EXHAUSTED,
    FramingError,
    MessageReader,
    frame,
    status_headers,
    timeout_seconds,
)

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
ENCODINGS = [None, "gzip", "deflate"]
BIG = 2**31 - 1


def compress(payload: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(payload)
    return zlib.compress(payload)  # deflate: the zlib format, as grpc's "deflate" is


# -- frame -------------------------------------------------------------------------------------


def test_frame_identity_is_a_zero_flag_and_a_big_endian_length():
    assert frame(b"") == b"\x00\x00\x00\x00\x00"
    assert frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert frame(b"x" * 300)[:5] == b"\x00\x00\x00\x01\x2c"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_frame_compressed_sets_the_flag_and_other_implementations_inflate_it(encoding):
    payload = b"tritonlite " * 1000
    framed = frame(payload, encoding)
    assert framed[0] == 1
    body = framed[5:]
    assert int.from_bytes(framed[1:5], "big") == len(body)
    assert len(body) < len(payload)  # it really is compressed
    inflated = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body)
    assert inflated == payload


# -- MessageReader: round trips ----------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("payload", [b"", b"\x00", b"hello", bytes(range(256)) * 400])
def test_round_trip_of_one_message(encoding, payload):
    reader = MessageReader(encoding, BIG)
    assert reader.feed(frame(payload, encoding)) == [payload]
    assert not reader.partial


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_reader_for_an_encoding_reads_uncompressed_messages_too(encoding):
    """The compressed flag is per message: a gzip stream may carry messages sent as they are."""
    reader = MessageReader(encoding, BIG)
    assert reader.feed(frame(b"plain") + frame(b"packed", encoding)) == [b"plain", b"packed"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_several_messages_in_one_chunk(encoding):
    payloads = [b"one", b"", b"three" * 100, b"\xff" * 7]
    reader = MessageReader(encoding, BIG)
    assert reader.feed(b"".join(frame(p, encoding) for p in payloads)) == payloads
    assert not reader.partial


def test_one_byte_at_a_time():
    payloads = [b"alpha", b"", b"gamma" * 50]
    data = b"".join(frame(p) for p in payloads)
    reader = MessageReader(None, BIG)
    got = []
    for index in range(len(data)):
        got += reader.feed(data[index : index + 1])
        # a message has begun and not ended exactly when the bytes so far end inside one
        assert reader.partial == (index + 1 not in {10, 15, 270})
    assert got == payloads


def test_partial_tells_a_message_that_has_begun():
    reader = MessageReader(None, BIG)
    assert reader.feed(frame(b"abcdef")[:3]) == []
    assert reader.partial
    assert reader.feed(frame(b"abcdef")[3:]) == [b"abcdef"]
    assert not reader.partial


@FUZZ
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    encoding=st.sampled_from(ENCODINGS),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_messages_split_at_any_chunk_boundaries(payloads, encoding, cuts):
    data = b"".join(frame(p, encoding) for p in payloads)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    reader = MessageReader(encoding, BIG)
    got = []
    for start, stop in zip(points, points[1:], strict=False):
        got += reader.feed(data[start:stop])
    assert got == payloads
    assert not reader.partial


# -- MessageReader: what it refuses ------------------------------------------------------------


def test_a_message_at_the_limit_is_read_and_one_over_it_is_refused():
    assert MessageReader(None, 10).feed(frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(FramingError) as caught:
        MessageReader(None, 10).feed(frame(b"x" * 11))
    assert caught.value.code == RESOURCE_EXHAUSTED == 8
    assert caught.value.details == "Received message larger than max (11 vs. 10)"


def test_the_length_prefix_alone_is_enough_to_refuse():
    """A peer announcing a huge message is refused at its prefix, before the bytes arrive."""
    reader = MessageReader(None, 1000)
    with pytest.raises(FramingError) as caught:
        reader.feed(b"\x00" + (2**31).to_bytes(4, "big"))
    assert caught.value.code == RESOURCE_EXHAUSTED


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_message_that_inflates_over_the_limit_is_refused(encoding):
    framed = frame(b"a" * 2000, encoding)
    assert len(framed) - 5 < 1000  # small on the wire
    with pytest.raises(FramingError) as caught:
        MessageReader(encoding, 1000).feed(framed)
    assert caught.value.code == RESOURCE_EXHAUSTED


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_message_that_inflates_to_exactly_the_limit_is_read(encoding):
    assert MessageReader(encoding, 1000).feed(frame(b"a" * 1000, encoding)) == [b"a" * 1000]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_is_refused_without_inflating_it_all(encoding):
    size = 64 * 1024 * 1024  # 64 MiB of zeros: about 64 kB compressed
    compressor = zlib.compressobj(1, wbits=framing.WBITS[encoding])
    zeros = bytes(1024 * 1024)
    packed = b"".join(compressor.compress(zeros) for _ in range(size // len(zeros))) + compressor.flush()
    assert len(packed) < 1024 * 1024
    framed = b"\x01" + len(packed).to_bytes(4, "big") + packed
    reader = MessageReader(encoding, 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(FramingError) as caught:
            reader.feed(framed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == RESOURCE_EXHAUSTED
    assert peak < 16 * 1024 * 1024  # a few MiB at most, never the 64 MiB the bomb holds


def test_a_compressed_flag_without_an_encoding_is_internal():
    reader = MessageReader(None, BIG)
    with pytest.raises(FramingError) as caught:
        reader.feed(frame(b"payload", "gzip"))
    assert caught.value.code == INTERNAL == 13


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_corrupt_compressed_data_is_internal(encoding):
    reader = MessageReader(encoding, BIG)
    with pytest.raises(FramingError) as caught:
        reader.feed(b"\x01\x00\x00\x00\x08" + b"notzlib!")
    assert caught.value.code == INTERNAL
    assert caught.value.details.startswith("Failed to decompress the message")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_data_of_the_other_format_is_internal(encoding):
    other = "deflate" if encoding == "gzip" else "gzip"
    with pytest.raises(FramingError) as caught:
        MessageReader(encoding, BIG).feed(frame(b"hello world" * 10, other))
    assert caught.value.code == INTERNAL


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_truncated_compressed_message_is_internal(encoding):
    """A compressed stream cut short (its end and checksum missing) is no message: gRPC core fails the
    call with INTERNAL rather than handing the handler the part that inflated."""
    payload = bytes(range(256)) * 40
    packed = frame(payload, encoding)[5:]
    cut = packed[: len(packed) - 6]
    reader = MessageReader(encoding, BIG)
    with pytest.raises(FramingError) as caught:
        reader.feed(b"\x01" + len(cut).to_bytes(4, "big") + cut)
    assert caught.value.code == INTERNAL


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_bytes_after_the_end_of_a_compressed_message_are_internal(encoding):
    """gRPC core: "Decompression failed due to not all input consumed"."""
    packed = frame(b"payload" * 20, encoding)[5:] + b"trailing junk"
    with pytest.raises(FramingError) as caught:
        MessageReader(encoding, BIG).feed(b"\x01" + len(packed).to_bytes(4, "big") + packed)
    assert caught.value.code == INTERNAL


def test_framing_error_carries_code_and_details():
    error = FramingError(RESOURCE_EXHAUSTED, "too big")
    assert (error.code, error.details, str(error)) == (8, "too big", "too big")


# -- grpc-timeout ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"2H", 7200.0),
        (b"3M", 180.0),
        (b"10S", 10.0),
        (b"250m", 0.25),
        (b"1500u", 0.0015),
        (b"7n", 7e-9),
        (b"0S", 0.0),
        (b"99999999S", 99999999.0),  # eight digits: the most the header may have
        (b"000000001m", None),  # nine digits
    ],
)
def test_timeout_seconds_for_every_unit(value, seconds):
    if seconds is None:
        assert timeout_seconds(value) is None
    else:
        assert timeout_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [b"", b"S", b"10", b"10s", b"10x", b"-1S", b"+1S", b"1.5S", b" 1S", b"1 S", b"123456789S", b"\xff\xfeS",
     "\u0661S".encode(), b"1e3m", b"0x10S"],
)  # fmt: skip
def test_timeout_seconds_is_none_for_junk(value):
    assert timeout_seconds(value) is None


# -- status trailers ---------------------------------------------------------------------------


def test_status_without_details_is_the_code_alone():
    assert status_headers(0, "") == [(b"grpc-status", b"0")]
    assert status_headers(12, "") == [(b"grpc-status", b"12")]


@pytest.mark.parametrize(
    ("details", "encoded"),
    [
        ("plain text", b"plain text"),
        ("printable ASCII stays: !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~",
         b"printable ASCII stays: !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"),
        ("100%", b"100%25"),
        ("no such model \u00e9%", b"no such model %C3%A9%25"),
        ("line one\nline two\r\t", b"line one%0Aline two%0D%09"),
        ("\u6a21\u578b", b"%E6%A8%A1%E5%9E%8B"),
        ("\x7f\x00", b"%7F%00"),
    ],
)  # fmt: skip
def test_status_details_are_percent_encoded_as_grpc_requires(details, encoded):
    headers = status_headers(5, details)
    assert headers[0] == (b"grpc-status", b"5")
    assert headers[1][0] == b"grpc-message"
    assert headers[1][1] == encoded
    assert all(0x20 <= byte <= 0x7E for byte in headers[1][1])  # only printable ASCII on the wire
    assert unquote_to_bytes(headers[1][1]).decode() == details  # and it decodes back


@FUZZ
@given(st.text(min_size=1, max_size=60))
def test_any_status_text_round_trips(details):
    name, value = status_headers(2, details)[1]
    assert name == b"grpc-message"
    assert all(0x20 <= byte <= 0x7E for byte in value)
    assert unquote_to_bytes(value).decode() == details
