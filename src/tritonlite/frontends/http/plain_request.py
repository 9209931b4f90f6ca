"""Reading a whole plain infer request from the bytes of one read, without httptools' callbacks.

A client in a loop (perf_analyzer, a tritonclient benchmark, a service calling the same model)
sends the same request line and headers again and again, with a new body. When one read brings
exactly one such request, whole, its head is looked up by its bytes (parsed once) and the
connection hands the request to the same ``InferExchange`` that httptools' path would create,
skipping a dozen parser callbacks. Anything else is left to httptools (nothing is consumed):

- ``POST /v2/models/{m}[/versions/{v}]/infer HTTP/1.1``, no query, no escapes;
- only the headers in ``PLAIN_HEADERS`` and the one ``--http-restricted-api=inference`` names, each
  once, with a Content-Length (no chunked body, no ``Expect``, no upgrade);
- a Content-Length that the read's bytes match exactly (nothing pipelined behind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tritonlite.frontends.http.errors import Headers
from tritonlite.frontends.http.exchange import InferHeaders
from tritonlite.frontends.http.restricted import HeaderCheck
from tritonlite.frontends.http.targets import InferTarget, InferTargets

# headers that change nothing in how the request is framed
PLAIN_HEADERS = frozenset(
    (b"host", b"user-agent", b"accept", b"accept-encoding", b"content-type", b"content-encoding",
     b"content-length", b"inference-header-content-length", b"connection")
)  # fmt: skip
HEAD_LIMIT = 256  # request heads remembered; starts over when full

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class PlainHead:
    """A request head the reader takes."""

    target: InferTarget
    headers: InferHeaders
    content_length: int
    keep_alive: bool


def parse_head(head: bytes, targets: InferTargets, guard: HeaderCheck | None = None) -> PlainHead | None:
    """The head (request line and headers, without the blank line) when it is plain, else None;
    ``guard`` is the endpoint's restriction of inference, when it has one."""
    request_line, *lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
        return None
    url = parts[1]
    if any(c in url for c in b"?%#"):
        return None
    target = targets.find(url)
    if target is None:
        return None
    headers: Headers = []
    content_length = None
    keep_alive = True
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return None
        value = value.strip(b" \t")
        if _VALUE.fullmatch(value) is None:
            return None
        name = name.lower()
        plain = name in PLAIN_HEADERS or (guard is not None and name == guard.name)
        if not plain or any(name == seen for seen, _ in headers):
            return None
        if name == b"content-length":
            if _DIGITS.fullmatch(value) is None:
                return None
            content_length = int(value)
        elif name == b"connection":
            option = value.lower()
            if option not in (b"keep-alive", b"close"):
                return None
            keep_alive = option == b"keep-alive"
        headers.append((name, value))
    if content_length is None:
        return None
    return PlainHead(target, InferHeaders.of(headers, guard), content_length, keep_alive)


class PlainRequestReader:
    """Reads whole plain infer requests (see the module's text); heads are parsed once."""

    def __init__(self, targets: InferTargets, guard: HeaderCheck | None = None) -> None:
        self.targets = targets
        self.guard = guard
        self.taken = 0  # requests read here (for tests and debugging)
        self._heads: dict[bytes, PlainHead | None] = {}

    def read(self, data: bytes) -> PlainHead | None:
        """The head of the request ``data`` holds when that is exactly one whole plain infer request
        (its body is the last ``content_length`` bytes), else None."""
        if not data.startswith(b"POST /v2/models/"):
            return None
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        head_bytes = data[:end]
        heads = self._heads
        try:
            head = heads[head_bytes]
        except KeyError:
            head = parse_head(head_bytes, self.targets, self.guard)
            if len(heads) >= HEAD_LIMIT:
                heads.clear()
            heads[head_bytes] = head
        start = end + 4
        if head is None or len(data) - start != head.content_length:
            return None
        self.taken += 1
        return head
