"""One OpenAI request's generations: each choice is one core request, read as text pieces.

``choice_events`` reads one request's responses and yields ``Piece``s (new text, held back while
it may be the start of a stop string) and one ``Finished``; ``run_choices`` merges several choices.
Leaving either early (the client went away, a stop string) closes the core's response stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest
from tritonlite.engine import Engine
from tritonlite.frontends.openai.contract import TextReader, logprobs, token_count

MERGE_QUEUE = 64  # pieces of n > 1 choices waiting for the client: the models wait beyond this


@dataclass
class ChoicePlan:
    """One choice: its request to the model and how to end it."""

    index: int
    request: InferRequest
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    count_tokens: Callable[[str], Awaitable[int | None]] | None = None  # the tokenizer's count
    want_logprobs: bool = False


@dataclass
class Piece:
    index: int
    text: str
    logprobs: list[dict] | None = None  # vLLM's entries for the tokens of this piece


@dataclass
class Finished:
    index: int
    text: str  # all the text of the choice (without a stop string and what followed it)
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int | None  # as the model counted them (num_input_tokens), if it did
    completion_tokens: int | None


def _held_back(text: str, stop: list[str]) -> int:
    """How many characters at the end of ``text`` could begin a stop string."""
    longest = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


def _stop_at(text: str, stop: list[str], start: int) -> int:
    """Where the first stop string in ``text`` begins (searching from ``start``), or -1."""
    found = [i for i in (text.find(s, start) for s in stop) if i >= 0]
    return min(found) if found else -1


async def choice_events(engine: Engine, plan: ChoicePlan) -> AsyncIterator[Piece | Finished]:
    """The pieces of one choice, then its ``Finished``. A core error is raised (before or during it)."""
    reader = TextReader()
    text = ""
    sent = 0
    stopped = False
    prompt_tokens = completion_tokens = None
    longest_stop = max((len(s) for s in plan.stop), default=0)
    async with aclosing(engine.infer_stream(plan.request)) as items:
        async for response, final in items:
            if isinstance(response, TritonError):
                raise response
            entries = None
            if response is not None:
                piece = reader.text(response, final)
                prompt_tokens = token_count(response, "num_input_tokens") or prompt_tokens
                counted = token_count(response, "num_output_tokens")
                if counted is not None:
                    completion_tokens = (completion_tokens or 0) + counted
                if plan.want_logprobs:
                    entries = logprobs(response)
            else:
                piece = reader.text_end() if final else ""
            before = len(text)
            text += piece
            if plan.stop:
                cut = _stop_at(text, plan.stop, max(0, before - longest_stop + 1))
                if cut >= 0:
                    text, stopped = text[:cut], True
            end = len(text) if stopped or final or not plan.stop else len(text) - _held_back(text, plan.stop)
            if end > sent or entries:
                yield Piece(plan.index, text[sent:end], entries)
                sent = max(sent, end)
            if stopped or final:
                break
    if sent < len(text):
        yield Piece(plan.index, text[sent:])
    if completion_tokens is None and plan.count_tokens is not None:
        completion_tokens = await plan.count_tokens(text)
    length = not stopped and completion_tokens is not None and completion_tokens >= plan.max_tokens
    yield Finished(plan.index, text, "length" if length else "stop", prompt_tokens, completion_tokens)


async def run_choices(engine: Engine, plans: list[ChoicePlan]) -> AsyncIterator[Piece | Finished]:
    """Every choice's events; several choices run at once and their events interleave."""
    if len(plans) == 1:
        async with aclosing(choice_events(engine, plans[0])) as events:
            async for event in events:
                yield event
        return
    queue: asyncio.Queue[Piece | Finished | BaseException] = asyncio.Queue(MERGE_QUEUE)

    async def pump(plan: ChoicePlan) -> None:
        try:
            async with aclosing(choice_events(engine, plan)) as events:
                async for event in events:
                    await queue.put(event)
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)

    tasks = [asyncio.ensure_future(pump(plan)) for plan in plans]
    try:
        remaining = len(plans)
        while remaining:
            event = await queue.get()
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, Finished):
                remaining -= 1
            yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
