"""The OpenAI routes as a FastAPI router, mounted on the HTTP port and served alone on ``--openai-port``.

Every answer, errors included, is OpenAI's JSON; nothing here leans on FastAPI's validation (whose
errors the HTTP port words as Triton's). Bodies are read up to the HTTP port's input size limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from tritonlite.engine import Engine
from tritonlite.frontends.openai.embeddings import embeddings
from tritonlite.frontends.openai.errors import OpenAIError, bad_request, model_not_found
from tritonlite.frontends.openai.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, parse
from tritonlite.frontends.openai.service import Completions, json_answer
from tritonlite.frontends.openai.text_tokenizer import TokenizerCatalog


@dataclass
class OpenAISettings:
    tokenizer: Path | None = None  # --tokenizer: the folder of models that name none
    max_body_bytes: int = 64 * 1024 * 1024


async def _body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OpenAIError(413, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OpenAIError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not JSON: {exc.msg} (at {exc.pos})") from None


def build_router(engine: Engine, settings: OpenAISettings) -> APIRouter:
    router = APIRouter()
    tokenizers = TokenizerCatalog(settings.tokenizer)
    completions = Completions(engine, tokenizers)
    started = int(time.time())

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": started, "owned_by": "tritonlite"}

    def names() -> list[str]:
        return sorted({name for name, _version in engine.ready_versions()})

    @router.get("/v1/models")
    async def list_models() -> Response:
        return json_answer({"object": "list", "data": [model_card(name) for name in names()]})

    @router.get("/v1/models/{name:path}")
    async def get_model(name: str) -> Response:
        if name not in names():
            return model_not_found(name).response()
        return json_answer(model_card(name))

    @router.post("/v1/completions")
    async def create_completion(request: Request) -> Response:
        try:
            document = parse(CompletionRequest, await _body(request, settings.max_body_bytes))
            return await completions.completion(document)
        except OpenAIError as exc:
            return exc.response()

    @router.post("/v1/chat/completions")
    async def create_chat_completion(request: Request) -> Response:
        try:
            document = parse(ChatCompletionRequest, await _body(request, settings.max_body_bytes))
            return await completions.chat(document)
        except OpenAIError as exc:
            return exc.response()

    @router.post("/v1/embeddings")
    async def create_embeddings(request: Request) -> Response:
        try:
            document = parse(EmbeddingRequest, await _body(request, settings.max_body_bytes))
            return json_answer(await embeddings(engine, tokenizers, document))
        except OpenAIError as exc:
            return exc.response()

    return router


def build_openai_app(router: APIRouter) -> FastAPI:
    """The application of the OpenAI port: the routes, and OpenAI's 404 for any other path."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)

    @app.exception_handler(404)
    async def _not_found(request: Request, _exc: Exception) -> Response:
        return OpenAIError(404, f"no route {request.method} {request.url.path}", code="not_found").response()

    @app.exception_handler(405)
    async def _not_allowed(request: Request, _exc: Exception) -> Response:
        return OpenAIError(405, f"method {request.method} is not allowed on {request.url.path}").response()

    return app
