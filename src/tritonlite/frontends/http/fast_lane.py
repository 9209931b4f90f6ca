"""The fast lane: infer requests answered straight from the bytes one read brought.

A client in a loop (perf_analyzer, a tritonclient benchmark, a service calling the same model)
sends the same request again and again: the same request line and headers, the same JSON header,
new tensor bytes. When one read brings exactly one such request, whole, the lane answers it
without httptools' per-header callbacks, uvicorn's request/response cycle, an ASGI scope or an
asyncio task: the head is looked up by its bytes, the JSON header in the header cache, the request
is queued with ``ModelVersion.submit`` and the answer is written from the future's callback.

It takes a request only when the regular path would do exactly the same with it, and leaves
everything else to that path (nothing is consumed when it declines):

- ``POST /v2/models/{m}[/versions/{v}]/infer HTTP/1.1``, no query, no escapes; only the headers
  in ``PLAIN_HEADERS`` (no compression, no ``Expect``, no ``Connection: close``, no chunking);
  a Content-Length that the read's bytes match exactly (no pipelined bytes behind);
- a JSON header the header cache knows and a request of it already passed the loaded model's
  validation, with binary data of the size it names;
- a model whose scheduler takes submissions (the dynamic batcher) and has no response cache,
  and no trace being collected.

The protocol (``cycle.py``) feeds it only when the connection is between requests, holds bytes
that arrive while an answer is due until it has been written, and cancels the queued request when
the connection is lost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest
from tritonlite.frontends.http.app import _JSON, infer_failure, parse_infer_path
from tritonlite.frontends.http.header_cache import DecodedHeader

# headers that change nothing in how an infer request is read or answered
PLAIN_HEADERS = frozenset(
    (b"host", b"user-agent", b"accept", b"content-type", b"content-length", b"inference-header-content-length",
     b"connection")
)  # fmt: skip
ROUTE_LIMIT = 256  # request heads remembered; starts over when full

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]{1,15}")

Answer = Callable[[int, list, bytes], None]  # (status, headers without content-length, body)


class Route:
    """A request head the lane takes: where it goes and how long its body and JSON header are."""

    __slots__ = ("model", "version", "content_length", "header_length")

    def __init__(self, model: str, version: str, content_length: int, header_length: int) -> None:
        self.model = model
        self.version = version
        self.content_length = content_length
        self.header_length = header_length


def parse_head(head: bytes) -> Route | None:
    """The route of a request head (request line and headers, without the blank line) when the
    lane may take it; None when the regular path must read it."""
    request_line, *lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
        return None
    target = parts[1]
    if not target.startswith(b"/v2/models/") or any(c in target for c in b"?%#"):
        return None
    try:
        found = parse_infer_path(target.decode("ascii"))
    except UnicodeDecodeError:
        return None
    if found is None:
        return None
    content_length = header_length = None
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return None
        value = value.strip(b" \t")
        if _VALUE.fullmatch(value) is None:
            return None
        name = name.lower()
        if name not in PLAIN_HEADERS:
            return None
        if name == b"content-length":
            if content_length is not None or _DIGITS.fullmatch(value) is None:
                return None
            content_length = int(value)
        elif name == b"inference-header-content-length":
            if header_length is not None or _DIGITS.fullmatch(value) is None:
                return None
            header_length = int(value)
        elif name == b"connection" and value.lower() != b"keep-alive":
            return None
    if content_length is None or not header_length or header_length > content_length:
        return None
    return Route(found[0], found[1], content_length, header_length)


class InFlight:
    """A request the lane queued: answers through ``answer`` when its future is done."""

    __slots__ = ("model", "request", "entry", "future", "answer")

    def __init__(self, model: Any, request: InferRequest, entry: DecodedHeader, answer: Answer) -> None:
        self.model = model
        self.request = request
        self.entry = entry
        self.answer = answer
        self.future: asyncio.Future | None = None

    def cancel(self) -> None:
        """The client went away: the request leaves its queue if it has not run (nothing is answered)."""
        self.answer = None
        future = self.future
        if future is not None:
            future.cancel()

    def finish(self, future: asyncio.Future) -> None:
        answer = self.answer
        request = self.request
        try:
            response = self.model.settle(request, future)
            if response is None or answer is None:
                return
            payload, json_length, headers = self.entry.encode(response, request)
            status = 200
            if json_length is None:
                headers = _JSON
        except Exception as exc:
            status, headers, payload = infer_failure(exc, request.model_name)
        if answer is not None:
            answer(status, headers, payload)


class FastLane:
    """Takes the plain infer requests of one HTTP frontend (see the module's text)."""

    def __init__(self, frontend: Any) -> None:
        self.frontend = frontend
        self.taken = 0  # requests answered through the lane (for tests and debugging)
        self._routes: dict[bytes, Route | None] = {}

    def start(self, data: bytes, answer: Answer) -> InFlight | None:
        """Queue the request that ``data`` holds and return it, or None (nothing done) when the
        regular path must take it."""
        if not data.startswith(b"POST /v2/models/"):
            return None
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = data[:end]
        routes = self._routes
        try:
            route = routes[head]
        except KeyError:
            route = parse_head(head)
            if len(routes) >= ROUTE_LIMIT:
                routes.clear()
            routes[head] = route
        if route is None or self.frontend.engine.tracer.active:
            return None
        start = end + 4
        if len(data) - start != route.content_length:
            return None
        frontend = self.frontend
        if route.content_length > frontend.max_input_size:
            return None
        split = start + route.header_length
        entry = frontend.headers.entry(route.model, route.version, data[start:split])
        if entry is None:
            return None
        request = entry.build(route.model, route.version, memoryview(data)[split:])
        if request is None:
            return None
        try:
            model = frontend.engine.model_for(request)
        except TritonError:
            return None
        if not entry.validated(model) or not model.takes_submissions:
            return None
        inflight = InFlight(model, request, entry, answer)
        inflight.future = future = model.submit(request)
        future.add_done_callback(inflight.finish)
        self.taken += 1
        return inflight
