"""The gRPC wire format above HTTP/2: length-prefixed messages, their compression, the status
trailers and the ``grpc-timeout`` header (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)."""

from __future__ import annotations

import zlib
from urllib.parse import quote

from tritonlite.frontends.grpc.transport.held import Held

PREFIX_BYTES = 5  # one compressed-flag byte, then the message length (4 bytes, big-endian)

# zlib's window bits for each grpc-encoding this server reads and writes
WBITS = {"gzip": 31, "deflate": 15}
ACCEPT_ENCODING = b"identity,deflate,gzip"

_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class FramingError(Exception):
    """A message that cannot be read: its status code and text end the call."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def frame(payload: bytes | memoryview, encoding: str | None = None) -> bytes:
    """``payload`` as one length-prefixed message, compressed with ``encoding`` when given."""
    if encoding is None:
        return b"".join((b"\x00", len(payload).to_bytes(4, "big"), payload))
    compressor = zlib.compressobj(wbits=WBITS[encoding])
    packed = compressor.compress(payload) + compressor.flush()
    return b"\x01" + len(packed).to_bytes(4, "big") + packed


class MessageReader:
    """Cuts the messages out of a stream's DATA, however the frames split them."""

    __slots__ = ("encoding", "limit", "_held")

    def __init__(self, encoding: str | None, limit: int) -> None:
        self.encoding = encoding  # the request's grpc-encoding (None: identity)
        self.limit = limit  # the largest message accepted, after inflation
        self._held = Held()  # a message begun and not ended, joined once complete

    def feed(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        """The messages ``data`` completes, as views where they need no copy; raises FramingError for
        one that cannot be read."""
        if self._held:
            joined = self._held.add(data)
            if joined is None:
                return []
            data = joined
        source = memoryview(data)
        messages: list[bytes | memoryview] = []
        start, end = 0, len(source)
        need = PREFIX_BYTES
        while end - start >= PREFIX_BYTES:
            length = int.from_bytes(source[start + 1 : start + 5], "big")
            if length > self.limit:
                raise FramingError(RESOURCE_EXHAUSTED, f"Received message larger than max ({length} vs. {self.limit})")
            stop = start + PREFIX_BYTES + length
            if stop > end:
                need = PREFIX_BYTES + length
                break
            payload = source[start + PREFIX_BYTES : stop]
            if source[start]:
                payload = self._inflate(payload)
            messages.append(payload)
            start = stop
        self._held.keep(source, start, need)
        return messages

    @property
    def partial(self) -> bool:
        """Whether a message has begun and not ended."""
        return bool(self._held)

    def _inflate(self, payload: bytes | memoryview) -> bytes:
        if self.encoding is None:
            raise FramingError(INTERNAL, "Compressed message without a grpc-encoding")
        inflater = zlib.decompressobj(wbits=WBITS[self.encoding])
        try:
            message = inflater.decompress(payload, self.limit + 1)
        except zlib.error as exc:
            raise FramingError(INTERNAL, f"Failed to decompress the message: {exc}") from None
        if len(message) > self.limit:
            raise FramingError(RESOURCE_EXHAUSTED, f"Received message larger than max (over {self.limit})")
        if not inflater.eof or inflater.unused_data:
            raise FramingError(INTERNAL, "Failed to decompress the message: truncated, or data after its end")
        return message


def timeout_seconds(value: bytes) -> float | None:
    """The seconds a ``grpc-timeout`` value grants (``10S``, ``250m``, ...); None when it does not parse."""
    text = value.decode("ascii", "replace")
    unit = _TIMEOUT_UNITS.get(text[-1:])
    digits = text[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def status_headers(code: int, details: str) -> list[tuple[bytes, bytes]]:
    """The trailers that end a call: its status code and, when there is one, its percent-encoded text."""
    if code == 0 and not details:
        return OK_TRAILERS
    headers = [(b"grpc-status", str(code).encode())]
    if details:
        headers.append((b"grpc-message", quote(details, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()))
    return headers


OK_TRAILERS = [(b"grpc-status", b"0")]

# gRPC's status codes used by the transport itself (the service's come as grpc.StatusCode)
OK = 0
CANCELLED = 1
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
