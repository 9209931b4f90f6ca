"""One HTTP infer request, from its parsed head to its answer: the only way infer is served.

The connection (``protocol.py``) creates an ``InferExchange`` when the head of a
``POST /v2/models/{m}[/versions/{v}]/infer`` is parsed, hands it the body as it arrives, and
starts it when the responses before it are out. The exchange then decodes the body, submits the
request to the engine, and once the submission settles encodes the answer and writes status line,
headers and body in one piece. No task and no coroutine: the submission calls it back. A lost
connection cancels the submission (a queued request leaves its queue unexecuted).

Large work stays off the event loop: a body over ``INLINE_LIMIT`` bytes (or one that inflates past
it) is inflated and decoded in a worker thread, and so is an answer whose outputs hold more, so
that other connections keep being answered meanwhile. A body that ``Content-Length`` already
says is too large is refused before it is read.

A client that asks for ``text/event-stream`` (``Accept``) gets the request's responses as
server-sent events, one KServe JSON response each, in a chunked answer: the way to call a
decoupled model over ``/infer``. The exchange then reads the engine's stream in a task, and takes
the next response only once the connection's write buffer is below its high-water mark (a slow
reader holds the model's responses back, not the server's memory). ``lost`` is the one place a
disconnect is handled: it cancels the submission, or the stream (closing the engine's stream
withdraws the request).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.engine import Engine
from tritonlite.frontends.http.codec import (
    binary_headers,
    check_header_length,
    decode_request,
    encode_response,
    raw_request,
)
from tritonlite.frontends.http.content_coding import Inflation, compress
from tritonlite.frontends.http.errors import JSON_HEADERS, Headers, error_body, failure
from tritonlite.frontends.http.header_cache import DecodedHeader, HeaderCache
from tritonlite.frontends.http.restricted import REFUSAL_HEADERS, HeaderCheck
from tritonlite.models.model import ModelVersion
from tritonlite.models.submission import Submission
from tritonlite.tracing.tracer import Trace

DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024
COALESCE_LIMIT = 65536  # a bigger body is not worth copying to save one write
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INLINE_LIMIT = 1 << 20  # bytes of body (inflated) or of output data handled on the event loop
DECODE_WORKERS = 2  # threads for larger ones: bounds the memory of concurrent large requests
EVENT_STREAM = b"text/event-stream"
STREAM_HEADERS = [(b"content-type", EVENT_STREAM), (b"cache-control", b"no-cache")]
LAST_CHUNK = b"0\r\n\r\n"


@dataclass
class InferEndpoint:
    """What every infer exchange of one HTTP server shares."""

    engine: Engine
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    header_cache: HeaderCache = field(default_factory=HeaderCache)
    guard: HeaderCheck | None = None  # --http-restricted-api=inference:...: the header every infer needs
    _workers: ThreadPoolExecutor | None = None

    def too_large(self, size: int) -> TritonError:
        return invalid_arg(
            f"Request body size of {size} bytes exceeds the maximum allowed value of {self.max_input_size} "
            "bytes. Use --http-max-input-size to increase the limit."
        )

    def inflated_too_large(self) -> TritonError:
        return invalid_arg(
            f"Decompressed request body size exceeds the maximum allowed value of {self.max_input_size} "
            "bytes. Use --http-max-input-size to increase the limit."
        )

    @property
    def workers(self) -> ThreadPoolExecutor:
        """The threads that decode and encode large bodies (started on first use)."""
        if self._workers is None:
            self._workers = ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="http-large-body")
        return self._workers


@dataclass(frozen=True, slots=True)
class InferHeaders:
    """The request headers an infer exchange reads."""

    header_length: int | None = None  # Inference-Header-Content-Length
    content_encoding: bytes | None = None
    accept_encoding: bytes | None = None
    allowed: bool = True  # False: inference is restricted and the request lacks its header
    content_length: int | None = None  # as declared, to refuse a body too large before reading it
    stream: bool = False  # the client accepts text/event-stream: answer with server-sent events

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
        declared = found.get(b"content-length")
        accept = found.get(b"accept")
        return cls(
            length, found.get(b"content-encoding"), found.get(b"accept-encoding"), allowed,
            int(declared) if declared is not None and declared.isdigit() else None,
            accept is not None and EVENT_STREAM in accept.lower(),
        )  # fmt: skip


_READ = frozenset(
    (b"inference-header-content-length", b"content-encoding", b"accept-encoding", b"content-length", b"accept")
)
NO_HEADERS = InferHeaders()


class Carrier(Protocol):
    """What an exchange needs of the connection that carries it."""

    transport: asyncio.Transport

    def head(self, status: int, headers: Headers, length: int | None, keep_alive: bool) -> bytes:
        """Status line and headers of an answer with a body of ``length`` bytes (None: chunked)."""

    async def writable(self) -> None:
        """Return once the connection's write buffer is below its high-water mark."""

    def answered(self, exchange: InferExchange) -> None:
        """The exchange's answer is written: serve what comes next on the connection."""


class InferExchange:
    """One infer request on one connection (see the module's text)."""

    __slots__ = (
        "endpoint", "carrier", "model_name", "model_version", "headers", "keep_alive", "expect_continue",
        "response_complete", "_chunks", "_received", "_body_complete", "_started", "_lost", "_submission",
        "_trace", "_entry", "_binary_default", "_task", "_draining",
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
        self._task: asyncio.Future | None = None  # a worker's decode or encode, or the stream's task
        self._draining = False  # answered before its body came: the rest is read and dropped
        tracer = endpoint.engine.tracer
        self._trace: Trace | None = tracer.start(model_name) if tracer.active else None
        if self._trace is not None:
            self._trace.stamp("HTTP_RECV_START")

    # -- what the connection tells it -----------------------------------------------------------

    def receive(self, chunk: bytes) -> None:
        """A piece of the body; past ``--http-max-input-size`` the rest is only counted."""
        self._received += len(chunk)
        if self._received <= self.endpoint.max_input_size and not self._draining:
            self._chunks.append(chunk)

    def body_complete(self) -> None:
        self._body_complete = True
        if self._draining:  # its answer is out: now the connection closes
            self._finish()
        elif self._started:
            self._run()

    def start(self) -> None:
        """The answers before this one are out: go once the body is complete."""
        self._started = True
        if self._body_complete:
            self._run()
            return
        declared = self.headers.content_length
        if declared is not None and declared > self.endpoint.max_input_size:
            self._refuse(declared)
        elif self.expect_continue:
            self.carrier.transport.write(CONTINUE)

    def start_whole(self, body: bytes) -> None:
        """``receive``, ``body_complete`` and ``start`` in one: a whole request, first in line."""
        self._chunks.append(body)
        self._received = len(body)
        self._body_complete = self._started = True
        self._run()

    def lost(self) -> None:
        """The connection is gone: withdraw the request (or its stream); nothing is answered."""
        self._lost = True
        submission = self._submission
        if submission is not None:
            self._submission = None
            submission.cancel()
        task = self._task
        if task is not None:
            self._task = None
            task.cancel()

    def _refuse(self, declared: int) -> None:
        """``Content-Length`` says the body is too large: answer now (the model is looked up first,
        as always), then read the body only to drop it, and close the connection after it."""
        guard = self.endpoint.guard
        if guard is not None and not self.headers.allowed:  # a restricted API is refused first, as always
            status, headers, payload = 403, REFUSAL_HEADERS, guard.refusal
        else:
            try:
                self.endpoint.engine.ready_model(self.model_name, self.model_version)
                error: BaseException = self.endpoint.too_large(declared)
            except Exception as exc:
                error = exc
            status, headers, payload = failure(error, self.model_name)
        self.keep_alive = False
        self._draining = True
        self._chunks.clear()
        transport = self.carrier.transport
        if not transport.is_closing():
            transport.write(self.carrier.head(status, headers, len(payload), False) + payload)

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
        endpoint = self.endpoint
        try:
            # Triton looks the model up first: an unknown model is 404 whatever the body (empty, too large)
            model = endpoint.engine.ready_model(self.model_name, self.model_version)
            if self._received > endpoint.max_input_size:
                raise endpoint.too_large(self._received)
            chunks = self._chunks
            self._chunks = []  # the connection keeps its last exchange: not its body
            encoding = self.headers.content_encoding
            inflation = None
            if encoding is not None:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                inflation = Inflation(body, encoding, endpoint.max_input_size, endpoint.inflated_too_large)
                inline = inflation.step(INLINE_LIMIT)  # most compressed bodies are small: done here
            else:
                inline = self._received <= INLINE_LIMIT
            if inline:
                request = self._decode(model, chunks, inflation)
            else:
                task = self._task = asyncio.get_running_loop().run_in_executor(
                    endpoint.workers, self._decode, model, chunks, inflation
                )
                task.add_done_callback(self._decoded)
                return
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._go(request)

    def _decoded(self, task: asyncio.Future) -> None:
        """A worker decoded the body (on the loop again)."""
        if self._lost or task.cancelled():
            return
        self._task = None
        try:
            request = task.result()
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._go(request)

    def _go(self, request: InferRequest) -> None:
        request.trace = self._trace
        if self.headers.stream:
            self._task = asyncio.get_running_loop().create_task(self._stream(request))
            return
        try:
            submission = self.endpoint.engine.submit(request)
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._submission = submission
        submission.on_settled(self._settled)

    def _decode(self, model: ModelVersion, chunks: list[bytes], inflation: Inflation | None) -> InferRequest:
        """The request a body (its ``chunks``) holds (on the loop, or in a worker for a large one)."""
        if inflation is not None:
            inflation.step()
            body = inflation.result()
        else:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        engine = self.endpoint.engine
        length = self.headers.header_length
        if length == 0 or (length is None and not body):
            return raw_request(model, self.model_name, self.model_version, body)
        if length is None:
            request, self._binary_default = decode_request(
                self.model_name, self.model_version, body, None, engine.shared_memory
            )
            return request
        check_header_length(length, len(body))
        request, self._binary_default, self._entry = self.endpoint.header_cache.decode(
            self.model_name, self.model_version, body, length, engine.shared_memory
        )
        return request

    # -- the answer ------------------------------------------------------------------------------

    def _settled(self, submission: Submission) -> None:
        self._submission = None
        if self._lost:
            return
        try:
            response = submission.result()
            if self._trace is not None:
                self._trace.stamp("INFER_RESPONSE_COMPLETE")
            if _data_size(response) > INLINE_LIMIT:
                task = self._task = asyncio.get_running_loop().run_in_executor(
                    self.endpoint.workers, self._encode, response, submission.request
                )
                task.add_done_callback(self._encoded)
                return
            headers, payload = self._encode(response, submission.request)
        except asyncio.CancelledError:  # withdrawn by the server (its model stopped), not by this client
            self._answer(*failure(TritonError(ErrorKind.CANCELLED, "request cancelled"), self.model_name))
            return
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._answer(200, headers, payload)

    def _encoded(self, task: asyncio.Future) -> None:
        """A worker encoded the answer (on the loop again)."""
        if self._lost or task.cancelled():
            return
        self._task = None
        try:
            answer = task.result()
        except Exception as exc:
            self._answer(*failure(exc, self.model_name))
            return
        self._answer(200, *answer)

    def _encode(self, response: InferResponse, request: InferRequest) -> tuple[Headers, bytes]:
        """The headers and body of a successful answer (on the loop, or in a worker for a large one)."""
        entry = self._entry
        if entry is not None:
            payload, json_length, headers = entry.encode(response, request)
        else:
            payload, json_length = encode_response(
                response, request, self._binary_default, self.endpoint.engine.shared_memory
            )
            headers = None
        if json_length is None:
            headers = JSON_HEADERS
        elif headers is None:
            headers = binary_headers(json_length)
        accept = self.headers.accept_encoding
        if accept is not None:
            payload, coding = compress(payload, accept)
            if coding is not None:
                headers = [*headers, (b"content-encoding", coding)]
        return headers, payload

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
        self._finish()

    def _finish(self) -> None:
        """The answer is out: the connection serves what comes next."""
        self.response_complete = True
        trace = self._trace
        if trace is not None:
            trace.stamp("HTTP_SEND_END")
            self.endpoint.engine.tracer.finish(trace, self.model_name)
        self.carrier.answered(self)

    # -- the answer as server-sent events ----------------------------------------------------------

    async def _stream(self, request: InferRequest) -> None:
        """Each response of the request as one event; the next taken once the client reads."""
        for requested in request.outputs or ():  # events carry JSON: no binary data in them
            requested.parameters = {**(requested.parameters or {}), "binary_data": False}
        self._binary_default = False
        carrier = self.carrier
        events = self.endpoint.engine.infer_stream(request)
        started = False
        try:
            async for item, _final in events:
                if not started:
                    started = True
                    self._write(carrier.head(200, STREAM_HEADERS, None, self.keep_alive))
                if isinstance(item, TritonError):
                    self._event(error_body(item.message))
                    break
                if item is not None:
                    self._event(await self._event_payload(item, request))
                await carrier.writable()
        except asyncio.CancelledError:
            raise  # the client left (lost): nothing more is written
        except Exception as exc:
            if not started:  # refused before any response: an ordinary error answer
                self._answer(*failure(exc, self.model_name))
                return
            self._event(error_body(exc.message if isinstance(exc, TritonError) else f"internal error: {exc}"))
        finally:
            await events.aclose()  # withdraws the request if it is still running
        self._task = None
        if not started:
            self._write(carrier.head(200, STREAM_HEADERS, None, self.keep_alive))
        self._write(LAST_CHUNK)
        self._finish()

    async def _event_payload(self, response: InferResponse, request: InferRequest) -> bytes:
        """One response in KServe JSON, encoded in a worker when it is large."""
        shm = self.endpoint.engine.shared_memory
        if _data_size(response) <= INLINE_LIMIT:
            return encode_response(response, request, False, shm)[0]
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(self.endpoint.workers, encode_response, response, request, False, shm))[0]

    def _event(self, payload: bytes) -> None:
        """One server-sent event as one chunk of the answer (a large one not copied behind its head)."""
        size = len(payload) + 8  # "data: " and the blank line after it
        head = b"%x\r\ndata: " % size
        if size <= COALESCE_LIMIT:
            self._write(head + payload + b"\n\n\r\n")
        else:
            self._write(head)
            self._write(payload)
            self._write(b"\n\n\r\n")

    def _write(self, data: bytes) -> None:
        transport = self.carrier.transport
        if not transport.is_closing():
            transport.write(data)


def _data_size(response: InferResponse) -> int:
    """Bytes in the response's output arrays (a loop: cheaper than sum() of a generator)."""
    size = 0
    for tensor in response.outputs:
        size += tensor.data.nbytes
    return size
