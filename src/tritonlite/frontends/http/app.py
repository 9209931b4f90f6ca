"""The HTTP frontend: a raw ASGI fast path for infer, FastAPI for everything else.

Errors are always Triton's: a status code from the error kind and ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import Route

from tritonlite.core.datatypes import ELEMENT_SIZE, bytes_array, deserialize_bytes, element_count, tensor_from_bytes
from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.core.validation import RAW_INPUT_NAME, request_prefix
from tritonlite.engine import Engine
from tritonlite.frontends.http.codec import binary_headers, decode_request, encode_response
from tritonlite.frontends.http.errors import JSON_HEADERS, failure
from tritonlite.frontends.http.header_cache import HeaderCache
from tritonlite.frontends.http.routes import build_api

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUT_SIZE = 64 * 1024 * 1024
_JSON = JSON_HEADERS


def parse_infer_path(path: str) -> tuple[str, str] | None:
    """/v2/models/{name}[/versions/{version}]/infer -> (name, version)."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], ""
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2].isdigit():
        return parts[0], parts[2]
    return None


class HttpFrontend:
    """The ASGI application served on the HTTP port."""

    def __init__(self, engine: Engine, max_input_size: int = DEFAULT_MAX_INPUT_SIZE) -> None:
        self.engine = engine
        self.max_input_size = max_input_size
        self.headers = HeaderCache()  # JSON infer headers seen before, decoded once
        self.fast_lane = None  # plain infer requests answered from the bytes of one read
        if os.environ.get("TRITONLITE_HTTP_FAST", "1") != "0":
            from tritonlite.frontends.http.fast_lane import FastLane  # it builds on this module

            self.fast_lane = FastLane(self)
        self.api = build_api(engine)
        self.api.router.routes.append(Route("/v2/models/{name}/infer", self._infer_route, methods=["POST"]))
        self.api.router.routes.append(
            Route("/v2/models/{name}/versions/{version:int}/infer", self._infer_route, methods=["POST"])
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/infer"):
            target = parse_infer_path(scope["path"])
            if target is not None:
                await self._infer(scope, receive, send, target[0], target[1])
                return
        await self.api(scope, receive, send)

    async def _infer_route(self, scope, receive, send) -> None:
        """The same infer, reached through routing (only when the fast path did not match)."""
        params = scope.get("path_params", {})
        await self._infer(scope, receive, send, params["name"], str(params.get("version", "")))

    async def _infer(self, scope, receive, send, model_name: str, model_version: str) -> None:
        """Infer over ASGI: the body through ``receive``, the answer through ``send``."""
        reply = await self.infer_reply(
            scope["headers"],
            lambda: self._read_body(receive),
            lambda work: self._infer_unless_disconnected(work, receive),
            model_name,
            model_version,
        )
        if reply is None:
            return  # the client went away while its request was queued; nothing is sent

        async def write(status: int, headers: list, payload: bytes) -> None:
            await _send(send, status, headers, payload)

        await deliver(reply, write, self.engine, model_name)

    async def infer_reply(
        self,
        headers: list[tuple[bytes, bytes]],
        read_body: Callable[[], Awaitable[bytes]],
        run_queued: Callable[[Awaitable[InferResponse]], Awaitable[InferResponse | None]],
        model_name: str,
        model_version: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, Any] | None:
        """The answer to one infer request, whatever carries it: status, headers (without
        content-length), body and the request's trace (None when not traced; the caller stamps the
        send and finishes it).

        ``read_body()`` gives the request body (raising TritonError when it is too large);
        ``run_queued(work)`` awaits the infer of a model whose requests wait in a queue and gives None
        when the client goes away first, which is answered here with None: nothing is to be sent.
        """
        header_length = None
        encoding = accept = None
        for key, value in headers:
            if key == b"inference-header-content-length":
                header_length = value
            elif key == b"content-encoding":
                encoding = value
            elif key == b"accept-encoding":
                accept = value
        tracer = self.engine.tracer
        trace = tracer.start(model_name) if tracer.active else None
        if trace is not None:
            trace.stamp("HTTP_RECV_START")
        try:
            body = await read_body()
            if trace is not None:
                trace.stamp("HTTP_RECV_END")
            if encoding is not None:
                body = _decompress(body, encoding)
            length = None
            if header_length is not None:
                try:
                    length = int(header_length)
                except ValueError:
                    length = 0  # Triton reads an unparsable size as 0: a raw binary request
            header = None
            if length == 0 or (length is None and not body):
                request = raw_request(self.engine, model_name, model_version, body)
                binary_default = True
            elif length is None:
                request, binary_default = decode_request(
                    model_name, model_version, body, None, self.engine.shared_memory
                )
            else:
                request, binary_default, header = self.headers.decode(
                    model_name, model_version, body, length, self.engine.shared_memory
                )
            request.trace = trace
            model = self.engine.model_for(request)
            validated = header is not None and header.validated(model)
            if model.queues_requests:
                response = await run_queued(model.infer(request, validated))
                if response is None:
                    return None
            else:
                response = await model.infer(request, validated)
            if header is not None and not validated:
                header.passed(model)
            if trace is not None:
                trace.stamp("INFER_RESPONSE_COMPLETE")
            if header is not None:
                payload, json_length, out_headers = header.encode(response, request)
            else:
                payload, json_length = encode_response(response, request, binary_default, self.engine.shared_memory)
                out_headers = None
        except Exception as exc:
            return (*infer_failure(exc, model_name), None)
        if json_length is None:
            out_headers = _JSON
        elif out_headers is None:
            out_headers = binary_headers(json_length)
        if accept is not None:
            payload, content_encoding = _compress(payload, accept)
            if content_encoding is not None:
                out_headers = [*out_headers, (b"content-encoding", content_encoding)]
        return 200, out_headers, payload, trace

    async def _infer_unless_disconnected(self, work: Awaitable[InferResponse], receive):
        """Await the infer ``work``, but drop the request from the queue if the client disconnects first.

        The infer runs in this task; a watcher task waits on ``receive`` and cancels this task when
        the client goes away (one extra task per request, not two and an ``asyncio.wait``).
        """
        current = asyncio.current_task()
        watching = True
        gone = False

        def on_message(watch: asyncio.Future) -> None:
            nonlocal gone
            if watching and not watch.cancelled() and watch.exception() is None:
                if watch.result().get("type") == "http.disconnect":
                    gone = True
                    current.cancel()

        watch = asyncio.ensure_future(receive())
        watch.add_done_callback(on_message)
        try:
            return await work
        except asyncio.CancelledError:
            if gone:
                if hasattr(current, "uncancel"):  # Python 3.11+: this cancellation is handled here
                    current.uncancel()
                return None
            raise
        finally:
            watching = False
            watch.cancel()

    async def _read_body(self, receive) -> bytes:
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_input_size:
                raise self.too_large(len(body))
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_input_size:
                raise self.too_large(size)
            parts.append(chunk)
        return b"".join(parts)

    def too_large(self, size: int) -> TritonError:
        return invalid_arg(
            f"request body of {size} bytes exceeds the maximum allowed value of {self.max_input_size} "
            "bytes; use --http-max-input-size to increase the limit"
        )


infer_failure = failure


async def deliver(reply: tuple, write: Callable[[int, list, bytes], Awaitable[None]], engine, model_name: str) -> None:
    """Send an ``infer_reply`` answer with ``write(status, headers, payload)``; a traced request gets
    its send timestamps and its trace is finished."""
    status, headers, payload, trace = reply
    if trace is None:
        await write(status, headers, payload)
        return
    trace.stamp("HTTP_SEND_START")
    await write(status, headers, payload)
    trace.stamp("HTTP_SEND_END")
    engine.tracer.finish(trace, model_name)


async def _send(send, status: int, headers: list, body: bytes) -> None:
    headers = headers + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _decompress(body: bytes, encoding: bytes) -> bytes:
    name = encoding.strip().lower()
    try:
        if name == b"gzip":
            return gzip.decompress(body)
        if name == b"deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise invalid_arg(f"failed to decompress the request body ({name.decode()}): {exc}") from None
    if name in (b"", b"identity"):
        return body
    raise TritonError(ErrorKind.UNSUPPORTED, f"unsupported Content-Encoding '{name.decode()}'")


def _compress(body: bytes, accept: bytes) -> tuple[bytes, bytes | None]:
    wanted = [part.split(b";")[0].strip().lower() for part in accept.split(b",")]
    if b"gzip" in wanted:
        return gzip.compress(body, compresslevel=1), b"gzip"
    if b"deflate" in wanted:
        return zlib.compress(body, 1), b"deflate"
    return body, None


def raw_request(engine: Engine, model_name: str, model_version: str, body: bytes):
    """Triton's raw binary request: the whole body is the data of the model's only input."""

    model = engine.models.get(model_name, model_version)
    request = InferRequest(model_name, model_version)
    if len(model.inputs) != 1:
        raise invalid_arg(
            f"{request_prefix(request)}Raw request must only have 1 input (found 1) to be deduced but got "
            f"{len(model.inputs)} inputs in '{model_name}' model configuration"
        )
    spec = next(iter(model.inputs.values()))
    batch = [1] if model.max_batch_size > 0 else []
    if spec.datatype == "BYTES":
        items = deserialize_bytes(body)
        shape = batch + [len(items)]
        data = bytes_array(items, shape)
    else:
        if -1 in spec.dims:  # one variable dimension takes whatever the body holds
            known = element_count([d for d in spec.dims if d != -1])
            rest = len(body) // (ELEMENT_SIZE[spec.datatype] * known) if known else 0
            shape = batch + [rest if d == -1 else d for d in spec.dims]
        else:
            shape = batch + list(spec.dims)
        data = tensor_from_bytes(body, spec.datatype, shape, element_count(shape))
    request.inputs.append(InferTensor(RAW_INPUT_NAME, spec.datatype, shape, data))
    return request
