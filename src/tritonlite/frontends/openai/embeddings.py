"""``/v1/embeddings``: one request per input text to an embedding model, run at once."""

from __future__ import annotations

import asyncio
import base64
from contextlib import aclosing
from typing import Any

import numpy as np

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferResponse
from tritonlite.engine import Engine
from tritonlite.frontends.openai.contract import EmbeddingModel
from tritonlite.frontends.openai.errors import bad_request, from_triton, server_error
from tritonlite.frontends.openai.schemas import EmbeddingRequest
from tritonlite.frontends.openai.service import find_model
from tritonlite.frontends.openai.text_tokenizer import TokenizerCatalog

MAX_INPUTS = 2048  # as OpenAI's API


async def _first_response(engine: Engine, model: EmbeddingModel, text: str) -> InferResponse:
    async with aclosing(engine.infer_stream(model.request(text))) as items:
        async for response, _final in items:
            if isinstance(response, TritonError):
                raise response
            if response is not None:
                return response
    raise server_error(f"model '{model.model.name}' sent no response")


async def embeddings(engine: Engine, tokenizers: TokenizerCatalog, request: EmbeddingRequest) -> dict[str, Any]:
    texts = request.inputs()
    if len(texts) > MAX_INPUTS:
        raise bad_request(f"'input' takes at most {MAX_INPUTS} texts", param="input")
    version = find_model(engine, request.model)
    model = EmbeddingModel.of(version)
    tokenizer = await tokenizers.get(version)
    try:
        responses = await asyncio.gather(*(_first_response(engine, model, text) for text in texts))
    except TritonError as exc:
        raise from_triton(exc) from None
    data = []
    for index, response in enumerate(responses):
        vector = model.vector(response)
        if request.dimensions is not None and request.dimensions != vector.size:
            raise bad_request(
                f"model '{request.model}' gives {vector.size} dimensions, not {request.dimensions}", param="dimensions"
            )
        if request.encoding_format == "base64":
            value: Any = base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    count = await tokenizer.count_all(texts)
    usage = None if count is None else {"prompt_tokens": count, "total_tokens": count}
    return {"object": "list", "data": data, "model": request.model, "usage": usage}
