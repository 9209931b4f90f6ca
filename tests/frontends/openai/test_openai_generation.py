"""Choices read from a core response stream: stop strings (also split across responses), text held
back while it may begin one, UTF-8 split across responses, finish reasons, early close, n > 1."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tritonlite.core.datatypes import bytes_array
from tritonlite.core.errors import TritonError, internal
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.frontends.openai.generation import (
    ChoicePlan,
    Finished,
    Piece,
    _held_back,
    choice_events,
    run_choices,
)


def response(raw: bytes) -> InferResponse:
    return InferResponse("m", "1", "", [InferTensor("text_output", "BYTES", [1], bytes_array([raw], [1]))])


class FakeEngine:
    """Answers each request with the pieces named by its model name; records closed streams."""

    def __init__(self, answers: dict[str, list]) -> None:
        self.answers = answers
        self.closed: list[str] = []
        self.sent: dict[str, int] = {}

    async def infer_stream(self, request: InferRequest):
        items = self.answers[request.model_name]
        try:
            for i, item in enumerate(items):
                self.sent[request.model_name] = i + 1
                await asyncio.sleep(0)
                if isinstance(item, TritonError):
                    yield item, True
                    return
                yield (response(item) if item is not None else None), i == len(items) - 1
        finally:
            self.closed.append(request.model_name)


def collect(engine, plans) -> list:
    async def main():
        return [event async for event in run_choices(engine, plans)]

    return asyncio.run(main())


def plan(name: str, index: int = 0, stop=(), max_tokens: int = 100, count=lambda t: len(t.split())) -> ChoicePlan:
    async def count_tokens(text: str) -> int | None:
        return count(text)

    return ChoicePlan(index, InferRequest(name), max_tokens, list(stop), count_tokens)


def test_stop_split_across_responses_is_never_sent():
    engine = FakeEngine({"m": [b"hel", b"lo w", b"orld and more", b"never asked"]})
    events = collect(engine, [plan("m", stop=["o wor"])])
    pieces = [e.text for e in events if isinstance(e, Piece)]
    assert "".join(pieces) == "hell"
    assert events[-1] == Finished(0, "hell", "stop", None, 1)
    assert engine.sent["m"] == 3 and engine.closed == ["m"]  # closed at the stop: the last item never read


def test_text_held_back_only_while_it_may_start_a_stop():
    engine = FakeEngine({"m": [b"ab x", b"yq", b" end"]})
    events = collect(engine, [plan("m", stop=["xyz"])])
    assert [e.text for e in events if isinstance(e, Piece)] == ["ab ", "xyq", " end"]
    assert events[-1].finish_reason == "stop" and events[-1].text == "ab xyq end"


def test_held_back():
    assert _held_back("abc", ["cde"]) == 1
    assert _held_back("abcd", ["bcdx", "d"]) == 3
    assert _held_back("abc", ["x"]) == 0


def test_utf8_split_across_responses_and_a_bare_final_flag():
    raw = "héllo".encode()
    engine = FakeEngine({"m": [raw[:2], raw[2:], None]})
    events = collect(engine, [plan("m")])
    assert "".join(e.text for e in events if isinstance(e, Piece)) == "héllo"


def test_length_when_the_tokens_reach_max_tokens():
    engine = FakeEngine({"m": [b"one", b" two", b" three"]})
    assert collect(engine, [plan("m", max_tokens=3)])[-1].finish_reason == "length"
    engine = FakeEngine({"m": [b"one", b" two"]})
    assert collect(engine, [plan("m", max_tokens=3)])[-1].finish_reason == "stop"
    engine = FakeEngine({"m": [b"one", b" two", b" three"]})  # no tokenizer: no count, no "length"
    finished = collect(engine, [plan("m", max_tokens=3, count=lambda _t: None)])[-1]
    assert (finished.finish_reason, finished.completion_tokens) == ("stop", None)


def test_several_choices_interleave_and_an_error_ends_them_all():
    engine = FakeEngine({"a": [b"1", b"2", b"3"], "b": [b"x", b"y"]})
    events = collect(engine, [plan("a", 0), plan("b", 1)])
    assert {e.index: e.text for e in events if isinstance(e, Finished)} == {0: "123", 1: "xy"}
    engine = FakeEngine({"a": [b"1"] * 50, "b": [b"x", internal("boom")]})
    with pytest.raises(TritonError, match="boom"):
        collect(engine, [plan("a", 0), plan("b", 1)])
    assert sorted(engine.closed) == ["a", "b"]  # the other choice's stream closed too


def test_leaving_early_closes_the_core_stream():
    engine = FakeEngine({"m": [b"w"] * 100})

    async def main():
        events = choice_events(engine, plan("m"))
        first = await anext(events)
        await events.aclose()
        return first

    assert asyncio.run(main()).text == "w"
    assert engine.closed == ["m"] and engine.sent["m"] == 1


def test_model_reported_token_counts_win():
    counted = InferResponse("m", "1", "", [
        InferTensor("text_output", "BYTES", [1], bytes_array([b"a b"], [1])),
        InferTensor("num_input_tokens", "UINT32", [1], np.array([7], np.uint32)),
        InferTensor("num_output_tokens", "UINT32", [1], np.array([2], np.uint32)),
    ])  # fmt: skip

    class Counting(FakeEngine):
        async def infer_stream(self, request):
            yield counted, True

    finished = collect(Counting({}), [plan("m", count=lambda _t: 99)])[-1]
    assert (finished.prompt_tokens, finished.completion_tokens) == (7, 2)
