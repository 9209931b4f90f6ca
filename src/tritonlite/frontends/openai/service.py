"""``/v1/completions`` and ``/v1/chat/completions``: OpenAI requests to text models, answers back.

Each choice (``n`` per prompt) is one request to the model through the engine, with
``sampling_parameters`` made of the request's sampling fields (``max_tokens`` always, from
``max_completion_tokens`` or ``max_tokens`` or the default; a ``seed`` goes up by one per choice).
Stop strings are also applied here, so a model that ignores ``stop`` still ends there. ``usage``
counts tokens with the model's tokenizer (or the model's own ``num_*_tokens`` outputs); without
either it is null.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from tritonlite.core.errors import TritonError
from tritonlite.engine import Engine
from tritonlite.frontends.openai.contract import TextModel
from tritonlite.frontends.openai.errors import OpenAIError, bad_request, from_triton, model_not_found
from tritonlite.frontends.openai.generation import ChoicePlan, Finished, Piece, run_choices
from tritonlite.frontends.openai.logprobs import chat_logprobs, completion_logprobs
from tritonlite.frontends.openai.schemas import (
    NOT_SAMPLING,
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
)
from tritonlite.frontends.openai.sse import DONE, EventStream, event
from tritonlite.frontends.openai.text_tokenizer import TextTokenizer, TokenizerCatalog
from tritonlite.models.model import ModelVersion

DEFAULT_MAX_TOKENS = 16  # as Triton's OpenAI frontend (--default-max-tokens)
MAX_CHOICES = 512  # requests to the model for one OpenAI request


def json_answer(document: Any) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")


def find_model(engine: Engine, name: str) -> ModelVersion:
    try:
        return engine.ready_model(name)
    except TritonError:
        raise model_not_found(name) from None


def _sampling(request: SamplingFields, max_tokens: int, stop: list[str], logprobs: int | None) -> dict[str, Any]:
    parameters = {k: v for k, v in (request.model_extra or {}).items() if k not in NOT_SAMPLING}
    for key in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(request, key)
        if value is not None:
            parameters[key] = value
    parameters["max_tokens"] = max_tokens
    if stop:
        parameters["stop"] = stop
    if logprobs is not None:
        parameters["logprobs"] = logprobs
    return parameters


@dataclass
class Job:
    """One OpenAI request planned: its choices, and what the answer needs to know."""

    kind: str  # "text_completion" or "chat.completion"
    id: str
    model: str
    plans: list[ChoicePlan]
    prompt_tokens: int | None  # from the tokenizer; None: the model's own count, or none
    choices_per_prompt: int
    echo: list[str]  # completions with echo: each prompt, shown before its choices' text
    top_logprobs: int | None  # None: no logprobs asked

    def usage(self, finished: list[Finished]) -> dict[str, int] | None:
        prompt = self.prompt_tokens
        if prompt is None:  # the model's count, once per prompt
            counts = [f.prompt_tokens for f in finished if f.index % self.choices_per_prompt == 0]
            prompt = None if any(c is None for c in counts) else sum(counts)  # type: ignore[misc]
        completion = [f.completion_tokens for f in finished]
        if prompt is None or any(c is None for c in completion):
            return None
        total = sum(completion)  # type: ignore[arg-type]
        return {"prompt_tokens": prompt, "completion_tokens": total, "total_tokens": prompt + total}


class Completions:
    """Plans and answers completion and chat completion requests."""

    def __init__(self, engine: Engine, tokenizers: TokenizerCatalog) -> None:
        self.engine = engine
        self.tokenizers = tokenizers

    async def _model(self, name: str) -> tuple[TextModel, TextTokenizer]:
        model = find_model(self.engine, name)
        text_model = TextModel.of(model)
        return text_model, await self.tokenizers.get(model)

    def _plans(
        self, model: TextModel, tokenizer: TextTokenizer, request: SamplingFields, prompts: list[str],
        max_tokens: int, logprobs: int | None,
    ) -> list[ChoicePlan]:  # fmt: skip
        stop = request.stop_strings()
        plans = []
        for p, prompt in enumerate(prompts):
            for j in range(request.n):
                sampling = _sampling(request, max_tokens, stop, logprobs)
                if request.seed is not None:
                    sampling["seed"] = request.seed + j
                core = model.request(prompt, request.stream, sampling, exclude_input=True)
                plans.append(
                    ChoicePlan(p * request.n + j, core, max_tokens, stop, tokenizer.count_async, logprobs is not None)
                )
        return plans

    async def completion(self, request: CompletionRequest) -> Response:
        prompts = request.prompts()
        model, tokenizer = await self._model(request.model)
        max_tokens = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
        logprobs = request.logprobs if request.logprobs is not None and model.returns_logprobs else None
        if len(prompts) * request.n > MAX_CHOICES:
            raise bad_request(f"at most {MAX_CHOICES} choices per request (prompts times n)", param="n")
        job = Job(
            "text_completion", f"cmpl-{uuid.uuid4().hex}", request.model,
            self._plans(model, tokenizer, request, prompts, max_tokens, logprobs),
            await tokenizer.count_all(prompts),
            request.n, prompts if request.echo else [], logprobs,
        )  # fmt: skip
        return await self._answer(job, request)

    async def chat(self, request: ChatCompletionRequest) -> Response:
        request.check_supported()
        model, tokenizer = await self._model(request.model)
        messages = [{**m.model_dump(exclude_none=True), "content": m.text()} for m in request.messages]
        prompt = await tokenizer.chat_prompt_async(request.model, messages)
        limit = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
        max_tokens = DEFAULT_MAX_TOKENS if limit is None else limit
        logprobs = (request.top_logprobs or 1) if request.logprobs and model.returns_logprobs else None
        top = (request.top_logprobs or 0) if logprobs is not None else None  # how many alternatives to show
        job = Job(
            "chat.completion", f"chatcmpl-{uuid.uuid4().hex}", request.model,
            self._plans(model, tokenizer, request, [prompt], max_tokens, logprobs),
            await tokenizer.count_async(prompt), request.n, [], top,
        )  # fmt: skip
        return await self._answer(job, request)

    async def _answer(self, job: Job, request: SamplingFields) -> Response:
        events = run_choices(self.engine, job.plans)
        try:
            first = await anext(events)  # a refused request is an error answer, not a stream
        except TritonError as exc:
            await events.aclose()
            raise from_triton(exc) from None
        except OpenAIError:
            await events.aclose()
            raise
        if request.stream:
            return EventStream(_stream(job, first, events, request.include_usage()))
        async with aclosing(events):
            return json_answer(await _whole(job, first, events))


async def _rest(first: Piece | Finished, events: AsyncIterator[Piece | Finished]) -> AsyncIterator[Piece | Finished]:
    yield first
    async for item in events:
        yield item


async def _whole(job: Job, first: Piece | Finished, events: AsyncIterator[Piece | Finished]) -> dict[str, Any]:
    entries: dict[int, list[dict]] = {}
    finished: list[Finished] = []
    try:
        async for item in _rest(first, events):
            if isinstance(item, Finished):
                finished.append(item)
            elif item.logprobs:
                entries.setdefault(item.index, []).extend(item.logprobs)
    except TritonError as exc:
        raise from_triton(exc) from None
    finished.sort(key=lambda f: f.index)
    choices = []
    for f in finished:
        lp = entries.get(f.index, [])
        if job.kind == "chat.completion":
            logprobs = {"content": chat_logprobs(lp, job.top_logprobs)} if job.top_logprobs is not None else None
            choices.append({
                "index": f.index, "message": {"role": "assistant", "content": f.text},
                "logprobs": logprobs, "finish_reason": f.finish_reason,
            })  # fmt: skip
        else:
            echo = job.echo[f.index // job.choices_per_prompt] if job.echo else ""
            logprobs = completion_logprobs(lp, job.top_logprobs, len(echo)) if job.top_logprobs is not None else None
            choices.append(
                {"index": f.index, "text": echo + f.text, "logprobs": logprobs, "finish_reason": f.finish_reason}
            )
    return {
        "id": job.id, "object": job.kind, "created": int(time.time()), "model": job.model,
        "system_fingerprint": None, "choices": choices, "usage": job.usage(finished),
    }  # fmt: skip


async def _stream(
    job: Job, first: Piece | Finished, events: AsyncGenerator[Piece | Finished, None], include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """The SSE chunks of a streamed answer, ``data: [DONE]`` last; an error mid-way is an error event."""
    chat = job.kind == "chat.completion"
    created = int(time.time())
    head = {"id": job.id, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": job.model, "system_fingerprint": None}  # fmt: skip
    if include_usage:
        head["usage"] = None

    def chunk(index: int, text: str | None, finish: str | None, logprobs: Any = None, role: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        return event({**head, "choices": [choice]})

    offsets: dict[int, int] = {}
    finished: list[Finished] = []
    try:
        for plan in job.plans:  # each choice opens: its role (chat) or its echoed prompt
            if chat:
                yield chunk(plan.index, None, None, role=True)
            elif job.echo:
                echo = job.echo[plan.index // job.choices_per_prompt]
                offsets[plan.index] = len(echo)
                yield chunk(plan.index, echo, None)
        async with aclosing(events):
            async for item in _rest(first, events):
                if isinstance(item, Finished):
                    finished.append(item)
                    yield chunk(item.index, None if chat else "", item.finish_reason)
                    continue
                logprobs = None
                if job.top_logprobs is not None and item.logprobs:
                    if chat:
                        logprobs = {"content": chat_logprobs(item.logprobs, job.top_logprobs)}
                    else:
                        logprobs = completion_logprobs(item.logprobs, job.top_logprobs, offsets.get(item.index, 0))
                offsets[item.index] = offsets.get(item.index, 0) + len(item.text)
                yield chunk(item.index, item.text, None, logprobs)
    except TritonError as exc:
        yield event(from_triton(exc).body())
        return
    except OpenAIError as exc:
        yield event(exc.body())
        return
    if include_usage:
        yield event({**head, "choices": [], "usage": job.usage(finished)})
    yield DONE
