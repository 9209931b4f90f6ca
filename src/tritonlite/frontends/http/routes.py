"""Every HTTP endpoint but infer, as FastAPI routes answering Triton's JSON and errors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tritonlite.core.errors import TritonError, internal, invalid_arg
from tritonlite.engine import Engine
from tritonlite.frontends.http.errors import error_answer, error_body
from tritonlite.frontends.http.generate import generate, generate_request, generate_stream
from tritonlite.frontends.http.status_page import add_status_page

_RAPIDJSON_MISSING = {
    "{": "Missing a name for object member.",
    "}": "Missing a comma or '}' after an object member.",
    "]": "Missing a comma or ']' after an array element.",
}


def _rapidjson_error(exc: orjson.JSONDecodeError, text: bytes) -> str:
    """rapidjson's message and offset for a body orjson rejects, as Triton 2.51 words a bad request JSON."""
    if not text.strip():
        return "The document is empty. at 0"
    message, pos = exc.msg, exc.pos
    if "expected a string key" in message:
        return f"Missing a name for object member. at {pos}"
    if "expected ':'" in message:
        return f"Missing a colon after a name of object member. at {pos}"
    if "expected ',' or '}'" in message:
        return f"{_RAPIDJSON_MISSING['}']} at {pos}"
    if "expected ',' or ']'" in message:
        return f"{_RAPIDJSON_MISSING[']']} at {pos}"
    if "after document" in message:
        return f"The document root must not be followed by other values. at {pos}"
    if "trailing comma" in message:  # rapidjson stops at the closer that follows the comma
        rest = text[pos + 1 :]
        closer = pos + 1 + len(rest) - len(rest.lstrip())
        missing = "Missing a name for object member." if text[closer : closer + 1] == b"}" else "Invalid value."
        return f"{missing} at {closer}"
    if "end of data" in message:
        return f"{_eof_error(text)} at {pos}"
    return f"Invalid value. at {pos}"


def _eof_error(text: bytes) -> str:
    """What rapidjson says when a body ends early: inside a string, after a member or element, or else."""
    stack: list[str] = []
    in_string = escaped = False
    last = ""
    for char in text.decode(errors="replace"):
        if in_string:
            in_string, escaped = (True, False) if escaped else (char != '"', char == "\\")
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
        if not char.isspace():
            last = char
    if in_string:
        return "Missing a closing quotation mark in string."
    if not stack or last == "[" or last == ":" or (last == "," and stack[-1] == "["):
        return "Invalid value."
    if last in "{,":
        return _RAPIDJSON_MISSING["{"]
    if last in '"}]' or last.isdigit() or text.rstrip().endswith((b"true", b"false", b"null")):  # a whole value
        return _RAPIDJSON_MISSING["}" if stack[-1] == "{" else "]"]
    return "Invalid value."  # part of a literal


def _unsigned(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise internal("attempt to access JSON non-unsigned-integer as unsigned-integer")
    return value


def _member(document: Any, name: str) -> Any:
    if not isinstance(document, dict) or name not in document:
        raise internal(f"attempt to access non-existing object member '{name}'")
    return document[name]


def _lenient_b64decode(text: str) -> bytes:
    """Triton's decoder skips what is not base64 rather than refusing the load."""
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return b""


MODEL_NOT_READY = b'{"error":"Model version not ready"}'


def readiness_answer(ready: bool, not_ready_body: bytes = b"") -> Response:
    """Triton's answer to a health or readiness probe: 200 or 400, always ``text/plain`` (exactly)."""
    return Response(b"" if ready else not_ready_body, 200 if ready else 400, {"content-type": "text/plain"})


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


CUDA_IPC_HANDLE_SIZE = 64  # sizeof(cudaIpcMemHandle_t)


def build_api(engine: Engine, status_page: bool = True) -> FastAPI:
    """The FastAPI application of every endpoint but infer (and the status page at ``/``)."""
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if status_page:
        add_status_page(api, engine)

    @api.exception_handler(TritonError)
    async def _triton_error(_: Request, exc: TritonError) -> Response:
        status, body = error_answer(exc)
        return Response(body, status_code=status, media_type="application/json")

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return Response(error_body(str(exc.detail)), status_code=exc.status_code, media_type="application/json")

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        return Response(error_body(str(exc)), status_code=400, media_type="application/json")

    @api.get("/v2/health/live")
    async def health_live() -> Response:
        return readiness_answer(engine.is_live())

    @api.get("/v2/health/ready")
    async def health_ready() -> Response:
        return readiness_answer(engine.is_ready())

    @api.get("/v2")
    async def server_metadata() -> Response:
        return json_response(engine.server_metadata())

    @api.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        return json_response(engine.model_metadata(name))

    @api.get("/v2/models/{name}/versions/{version:int}")
    async def model_version_metadata(name: str, version: int) -> Response:
        return json_response(engine.model_metadata(name, str(version)))

    @api.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        return readiness_answer(engine.model_ready(name), MODEL_NOT_READY)

    @api.get("/v2/models/{name}/versions/{version:int}/ready")
    async def model_version_ready(name: str, version: int) -> Response:
        return readiness_answer(engine.model_ready(name, str(version)), MODEL_NOT_READY)

    @api.get("/v2/models/{name}/config")
    async def model_config(name: str) -> Response:
        return json_response(engine.model_config(name))

    @api.get("/v2/models/{name}/versions/{version:int}/config")
    async def model_version_config(name: str, version: int) -> Response:
        return json_response(engine.model_config(name, str(version)))

    @api.get("/v2/systemsharedmemory/status")
    async def system_shm_status() -> Response:
        return json_response(engine.system_shm_status())

    @api.get("/v2/systemsharedmemory/region/{name}/status")
    async def system_shm_region_status(name: str) -> Response:
        return json_response(engine.system_shm_status(name))

    @api.post("/v2/systemsharedmemory/region/{name}/register")
    async def system_shm_register(name: str, request: Request) -> Response:
        # Triton 2.51's order: each field is checked (400 when absent, 500 when mistyped) before the key is opened.
        body = await _json_body(request, empty_ok=False, object_only=False)
        if not isinstance(body, dict) or "key" not in body:
            raise invalid_arg("Shared memory register request has no 'key' field")
        key = body["key"]
        if not isinstance(key, str):
            raise internal("attempt to access JSON non-string as string")
        key = key.split("\0", 1)[0]  # Triton reads the key as a C string: it ends at a NUL
        offset = _unsigned(body["offset"]) if "offset" in body else 0
        if "byte_size" not in body:
            raise invalid_arg("Shared memory register request has no 'byte_size' field")
        engine.system_shm_register(name, key, offset, _unsigned(body["byte_size"]))
        return Response(status_code=200)

    @api.post("/v2/systemsharedmemory/region/{name}/unregister")
    async def system_shm_unregister(name: str) -> Response:
        engine.system_shm_unregister(name)
        return Response(status_code=200)

    @api.post("/v2/systemsharedmemory/unregister")
    async def system_shm_unregister_all() -> Response:
        engine.system_shm_unregister()
        return Response(status_code=200)

    @api.get("/v2/cudasharedmemory/status")
    async def cuda_shm_status() -> Response:
        return json_response(engine.cuda_shm_status())

    @api.get("/v2/cudasharedmemory/region/{name}/status")
    async def cuda_shm_region_status(name: str) -> Response:
        return json_response(engine.cuda_shm_status(name))

    @api.post("/v2/cudasharedmemory/region/{name}/register")
    async def cuda_shm_register(name: str, request: Request) -> Response:
        # Triton 2.51's order: raw_handle (400 when absent), then b64, byte_size, device_id (500 when absent or
        # mistyped), and only then the handle's base64 and length (400).
        body = await _json_body(request, empty_ok=False, object_only=False)
        if not isinstance(body, dict) or "raw_handle" not in body:
            raise invalid_arg("Shared memory register request has no 'raw_handle' field")
        b64 = _member(body["raw_handle"], "b64")
        if not isinstance(b64, str):
            raise internal("attempt to access JSON non-string as string")
        byte_size = _unsigned(_member(body, "byte_size"))
        device_id = _unsigned(_member(body, "device_id"))
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != CUDA_IPC_HANDLE_SIZE:
            raise invalid_arg("'raw_handle' must be a valid base64 encoded cudaIpcMemHandle_t")
        engine.cuda_shm_register(name, raw, device_id, byte_size)
        return Response(status_code=200)

    @api.post("/v2/cudasharedmemory/region/{name}/unregister")
    async def cuda_shm_unregister(name: str) -> Response:
        engine.cuda_shm_unregister(name)
        return Response(status_code=200)

    @api.post("/v2/cudasharedmemory/unregister")
    async def cuda_shm_unregister_all() -> Response:
        engine.cuda_shm_unregister()
        return Response(status_code=200)

    async def _json_body(request: Request, empty_ok: bool = True, object_only: bool = True) -> Any:
        """The body's JSON; a malformed one is Triton's 500 with rapidjson's text."""
        body = await request.body()
        try:
            document = orjson.loads(body) if body or not empty_ok else {}
        except orjson.JSONDecodeError as exc:
            raise internal(f"failed to parse the request JSON buffer: {_rapidjson_error(exc, body)}") from None
        if object_only and not isinstance(document, dict):
            raise invalid_arg("failed to parse the request JSON buffer: expected an object")
        return document

    @api.post("/v2/repository/models/{name}/load")
    async def repository_load(name: str, request: Request) -> Response:
        # As Triton 2.51: a body that is no object loads without parameters; every parameter is a string.
        document = await _json_body(request, object_only=False)
        parameters = document.get("parameters", {}) if isinstance(document, dict) else {}
        if not isinstance(parameters, dict):
            raise internal("attempt to get members for non-object")
        decoded: dict = {}
        for key, value in parameters.items():
            if not isinstance(value, str):
                raise internal("attempt to access JSON non-string as string")
            decoded[key] = _lenient_b64decode(value) if key.startswith("file:") else value
        await engine.load_model(name, decoded)
        return Response(status_code=200)

    @api.post("/v2/repository/models/{name}/unload")
    async def repository_unload(name: str, request: Request) -> Response:
        parameters = (await _json_body(request)).get("parameters") or {}
        dependents = bool(parameters.get("unload_dependents", False)) if isinstance(parameters, dict) else False
        await engine.unload_model(name, dependents)
        return Response(status_code=200)

    async def _generate(name: str, version: str, request: Request, stream: bool) -> Response:
        document = await _json_body(request)
        core_request = generate_request(engine, name, version, document)
        if stream:
            return StreamingResponse(generate_stream(engine, core_request), media_type="text/event-stream")
        return Response(await generate(engine, core_request), media_type="application/json")

    @api.post("/v2/models/{name}/generate")
    async def model_generate(name: str, request: Request) -> Response:
        return await _generate(name, "", request, stream=False)

    @api.post("/v2/models/{name}/versions/{version:int}/generate")
    async def model_version_generate(name: str, version: int, request: Request) -> Response:
        return await _generate(name, str(version), request, stream=False)

    @api.post("/v2/models/{name}/generate_stream")
    async def model_generate_stream(name: str, request: Request) -> Response:
        return await _generate(name, "", request, stream=True)

    @api.post("/v2/models/{name}/versions/{version:int}/generate_stream")
    async def model_version_generate_stream(name: str, version: int, request: Request) -> Response:
        return await _generate(name, str(version), request, stream=True)

    @api.get("/v2/trace/setting")
    async def trace_settings() -> Response:
        return json_response(engine.trace_settings())

    @api.post("/v2/trace/setting")
    async def update_trace_settings(request: Request) -> Response:
        return json_response(engine.update_trace_settings(await _json_body(request)))

    @api.get("/v2/models/{name}/trace/setting")
    async def model_trace_settings(name: str) -> Response:
        return json_response(engine.trace_settings(name))

    @api.post("/v2/models/{name}/trace/setting")
    async def update_model_trace_settings(name: str, request: Request) -> Response:
        return json_response(engine.update_trace_settings(await _json_body(request), name))

    @api.get("/v2/logging")
    async def log_settings() -> Response:
        return json_response(engine.log_settings())

    @api.post("/v2/logging")
    async def update_log_settings(request: Request) -> Response:
        return json_response(engine.update_log_settings(await _json_body(request)))

    @api.get("/v2/models/stats")
    async def all_statistics() -> Response:
        return json_response(engine.statistics())

    @api.get("/v2/models/{name}/stats")
    async def model_statistics(name: str) -> Response:
        return json_response(engine.statistics(name))

    @api.get("/v2/models/{name}/versions/{version:int}/stats")
    async def model_version_statistics(name: str, version: int) -> Response:
        return json_response(engine.statistics(name, str(version)))

    # "/v2/models/stats" must win over "/v2/models/{name}"
    first = [r for r in api.router.routes if getattr(r, "path", "") == "/v2/models/stats"]
    api.router.routes[:] = first + [r for r in api.router.routes if r not in first]

    @api.post("/v2/repository/index")
    async def repository_index(request: Request) -> Response:
        body = await request.body()
        ready_only = False
        if body:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise invalid_arg(f"failed to parse the request JSON buffer: {exc.msg}") from None
            ready_only = bool(isinstance(document, dict) and document.get("ready", False))
        return json_response(engine.repository_index(ready_only))

    # POST .../infer never gets here: the connection serves it (protocol.py). These routes give the
    # other methods Triton's 405.
    async def infer_served_by_the_connection(request: Request) -> Response:
        raise StarletteHTTPException(404)

    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version:int}/infer"):
        api.router.routes.append(Route(path, infer_served_by_the_connection, methods=["POST"]))

    return api
