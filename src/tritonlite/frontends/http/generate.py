"""Triton's generate extension: ``/generate`` (one JSON answer) and ``/generate_stream`` (SSE).

The request body names model inputs as JSON keys with plain values (``{"IN": 3}``); each answer
is a flat JSON object of the outputs (one-element outputs as scalars) plus ``model_name`` and
``model_version``, as Triton writes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson

from tritonlite.core.datatypes import bytes_array, numpy_dtype
from tritonlite.core.errors import TritonError, invalid_arg
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.engine import Engine

ONE_RESPONSE_ONLY = (
    "generate expects model to produce exactly 1 response, use generate stream for model that generates "
    "various number of responses"
)


def generate_request(engine: Engine, model_name: str, model_version: str, document: Any) -> InferRequest:
    if not isinstance(document, dict):
        raise invalid_arg("failed to parse the request JSON buffer: expected an object")
    model = engine.ready_model(model_name, model_version)
    request = InferRequest(model_name, model_version, str(document.get("id", "")))
    parameters = document.get("parameters")
    if isinstance(parameters, dict):
        request.parameters.update(parameters)
    for key, value in document.items():
        if key in ("id", "parameters"):
            continue
        spec = model.inputs.get(key)
        if spec is None:
            continue  # Triton passes unknown keys on as parameters; they name no input
        values = value if isinstance(value, list) else [value]
        if spec.datatype == "BYTES":
            data = bytes_array([str(v).encode("utf-8") for v in values], [len(values)])
        else:
            try:
                data = np.array(values, dtype=numpy_dtype(spec.datatype))
            except (TypeError, ValueError, OverflowError):
                raise invalid_arg(f"Unable to parse '{key}': value does not fit {spec.datatype}") from None
        if model.max_batch_size > 0:
            data = data.reshape([1, *data.shape])
        request.inputs.append(InferTensor(key, spec.datatype, list(data.shape), data))
    return request


def response_json(response: InferResponse) -> bytes:
    document: dict[str, Any] = {}
    for tensor in response.outputs:
        flat = np.asarray(tensor.data).reshape(-1)
        if tensor.datatype == "BYTES":
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
        else:
            values = flat.tolist()
        document[tensor.name] = values[0] if len(values) == 1 else values
    document["model_name"] = response.model_name
    document["model_version"] = response.model_version
    return orjson.dumps(document)


async def generate(engine: Engine, request: InferRequest) -> bytes:
    answers: list[InferResponse] = []
    async for item, _final in engine.infer_stream(request):
        if isinstance(item, TritonError):
            raise item
        if item is not None:
            answers.append(item)
    if len(answers) != 1:
        return orjson.dumps({"error": ONE_RESPONSE_ONLY})
    return response_json(answers[0])


async def generate_stream(engine: Engine, request: InferRequest) -> AsyncIterator[bytes]:
    """Server-sent events, one per response (a final flag without a response sends nothing).

    Starlette sends each event once the previous one is written (uvicorn's flow control: a slow
    reader holds the responses back); a client that leaves cancels the response's task, and closing
    the engine's stream here withdraws the request at once, not when the generator is collected."""
    events = engine.infer_stream(request)
    try:
        async for item, _final in events:
            if isinstance(item, TritonError):
                yield b"data: " + orjson.dumps({"error": item.message}) + b"\n\n"
                return
            if item is not None:
                yield b"data: " + response_json(item) + b"\n\n"
    except TritonError as exc:
        yield b"data: " + orjson.dumps({"error": exc.message}) + b"\n\n"
    finally:
        await events.aclose()
