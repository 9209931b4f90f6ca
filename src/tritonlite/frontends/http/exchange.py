"""One HTTP infer request, from its parsed head to its answer: the only way infer is served.

The connection (``protocol.py``) creates an ``InferExchange`` when the head of a
``POST /v2/models/{m}[/versions/{v}]/infer`` is parsed, hands it the body as it arrives, and
starts it when the responses before it are out. The exchange then decodes the body, submits the
request to the engine, and once the submission settles encodes the answer and writes status line,
headers and body in one piece. No task and no coroutine: the submission calls it back. A lost
connection cancels the submission (a queued request leaves its queue unexecuted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg
from tritonlite.core.types import InferRequest
from tritonlite.engine import Engine
from tritonlite.frontends.http.codec import binary_headers, decode_request, encode_response, raw_request
from tritonlite.frontends.http.content_coding import compress, decompress
from tritonlite.frontends.http.errors import JSON_HEADERS, Headers, failure
from tritonlite.frontends.http.header_cache import DecodedHeader, HeaderCache
from tritonlite.frontends.http.restricted import REFUSAL_HEADERS, HeaderCheck
from tritonlite.models.submission import Submission
from tritonlite.tracing.tracer import Trace

DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024
COALESCE_LIMIT = 65536  # a bigger body is not worth copying to save one write
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class InferEndpoint:
    """What every infer exchange of one HTTP server shares."""

    engine: Engine
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    header_cache: HeaderCache = field(default_factory=HeaderCache)
    guard: HeaderCheck | None = None  # --http-restricted-api=inference:...: the header every infer needs

    def too_large(self, size: int) -> TritonError:
        return invalid_arg(
            f"request body of {size} bytes exceeds the maximum allowed value of {self.max_input_size} "
            "bytes; use --http-max-input-size to increase the limit"
        )


@dataclass(frozen=True, slots=True)
class InferHeaders:
    """The request headers an infer exchange reads."""

    header_length: int | None = None  # Inference-Header-Content-Length
    content_encoding: bytes | None = None
    accept_encoding: bytes | None = None
    allowed: bool = True  # False: inference is restricted and the request lacks its header

    @classmethod
    def of(cls, headers: Headers, guard: HeaderCheck | None = None) -> InferHeaders:
        """From the parsed headers (lower-case names); ``guard`` is the endpoint's, when it has one.
        Both ways to an exchange (httptools and plain_request.py) come here: the one restriction check."""
        allowed = guard is None or guard.allows(headers)
        found: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in _READ:
                found[name] = value
        if not found and allowed:
            return NO_HEADERS
        length = found.get(b"inference-header-content-length")
        if length is not None:
            try:
                length = int(length)
            except ValueError:
                length = 0  # Triton reads an unparsable size as 0: a raw binary request
        return cls(length, found.get(b"content-encoding"), found.get(b"accept-encoding"), allowed)


_READ = frozenset((b"inference-header-content-length", b"content-encoding", b"accept-encoding"))
NO_HEADERS = InferHeaders()


class Carrier(Protocol):
    """What an exchange needs of the connection that carries it."""

    transport: asyncio.Transport

    def head(self, status: int, headers: Headers, length: int, keep_alive: bool) -> bytes:
        """Status line and headers of an answer with a body of ``length`` bytes."""

    def answered(self, exchange: InferExchange) -> None:
        """The exchange's answer is written: serve what comes next on the connection."""


class InferExchange:
    """One infer request on one connection (see the module's text)."""

    __slots__ = (
        "endpoint", "carrier", "model_name", "model_version", "headers", "keep_alive", "expect_continue",
        "response_complete", "_chunks", "_received", "_body_complete", "_started", "_lost", "_submission",
        "_trace", "_entry", "_binary_default",
    )  # fmt: skip

    def __init__(
        self,
        endpoint: InferEndpoint,
        carrier: Carrier,
        model_name: str,
        model_version: str,
        headers: InferHeaders,
        keep_alive: bool,
        expect_continue: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.carrier = carrier
        self.model_name = model_name
        self.model_version = model_version
        self.headers = headers
        self.keep_alive = keep_alive  # a shutdown clears it: the connection closes after the answer
        self.expect_continue = expect_continue
        self.response_complete = False
        self._chunks: list[bytes] = []
        self._received = 0
        self._body_complete = False
        self._started = False
        self._lost = False
        self._submission: Submission | None = None
        self._entry: DecodedHeader | None = None
        self._binary_default = True
        tracer = endpoint.engine.tracer
        self._trace: Trace | None = tracer.start(model_name) if tracer.active else None
        if self._trace is not None:
            self._trace.stamp("HTTP_RECV_START")

    # -- what the connection tells it -----------------------------------------------------------

    def receive(self, chunk: bytes) -> None:
        """A piece of the body; past ``--http-max-input-size`` the rest is only counted."""
        self._received += len(chunk)
        if self._received <= self.endpoint.max_input_size:
            self._chunks.append(chunk)

    def body_complete(self) -> None:
        self._body_complete = True
        if self._started:
            self._run()

    def start(self) -> None:
        """The answers before this one are out: go once the body is complete."""
        self._started = True
        if self._body_complete:
            self._run()
        elif self.expect_continue:
            self.carrier.transport.write(CONTINUE)

    def start_whole(self, body: bytes) -> None:
        """``receive``, ``body_complete`` and ``start`` in one: a whole request, first in line."""
        self._chunks.append(body)
        self._received = len(body)
        self._body_complete = self._started = True
        self._run()

    def lost(self) -> None:
        """The connection is gone: withdraw the request; nothing is answered."""
        self._lost = True
        submission = self._submission
        if submission is not None:
            self._submission = None
            submission.cancel()

    # -- the request -----------------------------------------------------------------------------

    def _run(self) -> None:
        guard = self.endpoint.guard
        if guard is not None and not self.headers.allowed:  # Triton refuses before it traces or reads
            self._trace = None
            self._answer(403, REFUSAL_HEADERS, guard.refusal)
            return
        trace = self._trace
        if trace is not None:
            trace.stamp("HTTP_RECV_END")
        try:
            request = self._decode()
            request.trace = trace
            submission = self.endpoint.engine.submit(request)
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._submission = submission
        submission.on_settled(self._settled)

    def _decode(self) -> InferRequest:
        endpoint = self.endpoint
        engine = endpoint.engine
        # Triton looks the model up first: an unknown model is 404 whatever the body (empty, too large)
        model = engine.ready_model(self.model_name, self.model_version)
        if self._received > endpoint.max_input_size:
            raise endpoint.too_large(self._received)
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()  # the connection keeps its last exchange: not its body
        headers = self.headers
        length, encoding = headers.header_length, headers.content_encoding
        if encoding is not None:
            body = decompress(body, encoding)
        if length == 0 or (length is None and not body):
            return raw_request(model, self.model_name, self.model_version, body)
        if length is None:
            request, self._binary_default = decode_request(
                self.model_name, self.model_version, body, None, engine.shared_memory
            )
            return request
        request, self._binary_default, self._entry = endpoint.header_cache.decode(
            self.model_name, self.model_version, body, length, engine.shared_memory
        )
        return request

    # -- the answer ------------------------------------------------------------------------------

    def _settled(self, submission: Submission) -> None:
        self._submission = None
        if self._lost:
            return
        request = submission.request
        try:
            response = submission.result()
            if self._trace is not None:
                self._trace.stamp("INFER_RESPONSE_COMPLETE")
            entry = self._entry
            if entry is not None:
                payload, json_length, headers = entry.encode(response, request)
            else:
                payload, json_length = encode_response(
                    response, request, self._binary_default, self.endpoint.engine.shared_memory
                )
                headers = None
        except asyncio.CancelledError:  # withdrawn by the server (its model stopped), not by this client
            self._answer(*failure(TritonError(ErrorKind.CANCELLED, "request cancelled"), self.model_name))
            return
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        if json_length is None:
            headers = JSON_HEADERS
        elif headers is None:
            headers = binary_headers(json_length)
        accept = self.headers.accept_encoding
        if accept is not None:
            payload, coding = compress(payload, accept)
            if coding is not None:
                headers = [*headers, (b"content-encoding", coding)]
        self._answer(200, headers, payload)

    def _answer(self, status: int, headers: Headers, payload: bytes) -> None:
        """Write the answer in one piece (two when the body is too big to copy behind its head)."""
        trace = self._trace
        if trace is not None:
            trace.stamp("HTTP_SEND_START")
        carrier = self.carrier
        transport = carrier.transport
        if not transport.is_closing():
            head = carrier.head(status, headers, len(payload), self.keep_alive)
            if len(payload) <= COALESCE_LIMIT:
                transport.write(head + payload)
            else:
                transport.write(head)
                transport.write(payload)
        self.response_complete = True
        if trace is not None:
            trace.stamp("HTTP_SEND_END")
            self.endpoint.engine.tracer.finish(trace, self.model_name)
        carrier.answered(self)
