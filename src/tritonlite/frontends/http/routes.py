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

from tritonlite.core.errors import TritonError, invalid_arg
from tritonlite.engine import Engine
from tritonlite.frontends.http.errors import error_answer, error_body
from tritonlite.frontends.http.generate import generate, generate_request, generate_stream


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def build_api(engine: Engine) -> FastAPI:
    """The FastAPI application of every endpoint but infer."""
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

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
        return Response(status_code=200 if engine.is_live() else 400)

    @api.get("/v2/health/ready")
    async def health_ready() -> Response:
        return Response(status_code=200 if engine.is_ready() else 400)

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
        if engine.model_ready(name):
            return Response(status_code=200)
        return json_response({"error": "Model version not ready"}, 400)

    @api.get("/v2/models/{name}/versions/{version:int}/ready")
    async def model_version_ready(name: str, version: int) -> Response:
        if engine.model_ready(name, str(version)):
            return Response(status_code=200)
        return json_response({"error": "Model version not ready"}, 400)

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
        body = await _json_body(request)
        if "key" not in body:
            raise invalid_arg("Shared memory register request has no 'key' field")
        key, offset, size = body["key"], body.get("offset", 0), body.get("byte_size", 0)
        if not isinstance(key, str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, size)):
            raise invalid_arg("Shared memory register request has an invalid 'key', 'offset' or 'byte_size'")
        engine.system_shm_register(name, key, offset, size)
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
        body = await _json_body(request)
        handle = body.get("raw_handle")
        if not isinstance(handle, dict) or not isinstance(handle.get("b64"), str):
            raise invalid_arg("Shared memory register request has no 'raw_handle' field")
        try:
            raw = base64.b64decode(handle["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_arg("Shared memory register request has an invalid 'raw_handle'") from None
        engine.cuda_shm_register(name, raw, int(body.get("device_id", 0)), int(body.get("byte_size", 0)))
        return Response(status_code=200)

    @api.post("/v2/cudasharedmemory/region/{name}/unregister")
    async def cuda_shm_unregister(name: str) -> Response:
        engine.cuda_shm_unregister(name)
        return Response(status_code=200)

    @api.post("/v2/cudasharedmemory/unregister")
    async def cuda_shm_unregister_all() -> Response:
        engine.cuda_shm_unregister()
        return Response(status_code=200)

    async def _json_body(request: Request) -> dict:
        body = await request.body()
        try:
            document = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise invalid_arg(f"failed to parse the request JSON buffer: {exc.msg}") from None
        if not isinstance(document, dict):
            raise invalid_arg("failed to parse the request JSON buffer: expected an object")
        return document

    @api.post("/v2/repository/models/{name}/load")
    async def repository_load(name: str, request: Request) -> Response:
        parameters = (await _json_body(request)).get("parameters") or {}
        if not isinstance(parameters, dict):
            raise invalid_arg("Unable to parse 'parameters': expected a JSON object")
        decoded: dict = {}
        for key, value in parameters.items():
            if key.startswith("file:"):
                try:
                    decoded[key] = base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    raise invalid_arg(f"Unable to parse '{key}': the file content must be base64") from None
            else:
                decoded[key] = value
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
