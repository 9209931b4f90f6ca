"""The OpenAI routes end to end: a real server with examples/llm_repository, driven by the official
``openai`` client (sync and async, streaming and not) and by raw HTTP, on the HTTP port and the
OpenAI port; answers compared with the same model's KServe generate_stream."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from serverutil import RunningServer, free_port

openai = pytest.importorskip("openai")
pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llm_repository"
PROMPT = "tell me about the keeper and the sea"
CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what does the keeper do"}]

# The example's chat template, rendered by hand: what the model is asked
CHAT_PROMPT = "system: be brief\nuser: what does the keeper do\nassistant:"

# Triton 2.51's generate_stream on the same model (captured from the reference server): the OpenAI
# answers must be the same text
TRITON_COMPLETION = ", the colour of the harbour. every night the keeper."  # PROMPT, 12 tokens
TRITON_CHAT = ". it answers one word at a time, and"  # CHAT_PROMPT, 10 tokens

# A copy of tiny_llm that names no tokenizer and no chat template
PLAIN_CONFIG = (EXAMPLE / "tiny_llm" / "config.pbtxt").read_text().split("# tritonlite's OpenAI routes")[0]
PLAIN_CONFIG = PLAIN_CONFIG.replace('name: "tiny_llm"', 'name: "plain_llm"')

# A text model that is not decoupled: the whole answer in one response
ONE_SHOT_MODEL = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for request in requests:
            prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            params = json.loads(pb_utils.get_input_tensor_by_name(request, "sampling_parameters").as_numpy()
                                .reshape(-1)[0])
            text = "echo:" + prompt.decode() + ":" + json.dumps(params, sort_keys=True)
            answers.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))]))
        return answers
"""
ONE_SHOT_CONFIG = """
name: "one_shot"
backend: "python"
max_batch_size: 8
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] }
]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]
"""


# A model that answers vLLM's logprobs JSON when the sampling parameters ask for them
LOGPROB_MODEL = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils

ENTRIES = [
    {"5": {"logprob": -0.1, "rank": 1, "decoded_token": "a"}, "7": {"logprob": -2.0, "rank": 2, "decoded_token": "x"}},
    {"6": {"logprob": -0.2, "rank": 1, "decoded_token": " b"}},
]


class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for request in requests:
            params = json.loads(pb_utils.get_input_tensor_by_name(request, "sampling_parameters").as_numpy()
                                .reshape(-1)[0])
            outputs = [pb_utils.Tensor("text_output", np.array([b"a b"], dtype=np.object_))]
            if "logprobs" in params:
                outputs.append(pb_utils.Tensor("logprobs", np.array([json.dumps(ENTRIES).encode()], dtype=np.object_)))
            answers.append(pb_utils.InferenceResponse(outputs))
        return answers
"""
LOGPROB_CONFIG = """
name: "logprob_llm"
backend: "python"
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] }
]
output [
  { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "logprobs" data_type: TYPE_STRING dims: [ 1 ] }
]
parameters { key: "chat_template" value { string_value: "chat.jinja" } }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    extra = tmp_path_factory.mktemp("openai_repo")
    plain = extra / "plain_llm"
    shutil.copytree(EXAMPLE / "tiny_llm" / "1", plain / "1")
    (plain / "config.pbtxt").write_text(PLAIN_CONFIG)
    (extra / "one_shot" / "1").mkdir(parents=True)
    (extra / "one_shot" / "1" / "model.py").write_text(ONE_SHOT_MODEL)
    (extra / "one_shot" / "config.pbtxt").write_text(ONE_SHOT_CONFIG)
    (extra / "logprob_llm" / "1").mkdir(parents=True)
    (extra / "logprob_llm" / "1" / "model.py").write_text(LOGPROB_MODEL)
    (extra / "logprob_llm" / "config.pbtxt").write_text(LOGPROB_CONFIG)
    (extra / "logprob_llm" / "chat.jinja").write_text("{{ messages[-1]['content'] }}")
    port = free_port()
    running = RunningServer([EXAMPLE, extra], f"--openai-port={port}", "--openai-address=127.0.0.1")
    running.openai = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{running.openai}/models", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.openai, api_key="none", max_retries=0)


def generate_stream_text(server, model: str, prompt: str, max_tokens: int) -> str:
    """The same model through Triton's KServe generate_stream: the text of every event, joined."""
    body = {
        "text_input": prompt, "stream": True, "exclude_input_in_output": True,
        "sampling_parameters": json.dumps({"max_tokens": max_tokens}),
    }  # fmt: skip
    answer = requests.post(f"http://{server.http}/v2/models/{model}/generate_stream", json=body, timeout=30)
    assert answer.status_code == 200
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]
    return "".join(e["text_output"] for e in events)


def test_models_lists_every_ready_model(client, server):
    ids = [m.id for m in client.models.list()]
    assert ids == ["logprob_llm", "one_shot", "plain_llm", "tiny_embed", "tiny_llm"]
    assert client.models.retrieve("tiny_llm").owned_by == "tritonlite"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    on_http = requests.get(f"http://{server.http}/v1/models", timeout=5).json()
    assert [m["id"] for m in on_http["data"]] == ids


def test_completion_matches_generate_stream(client, server):
    expected = generate_stream_text(server, "tiny_llm", PROMPT, 12)
    assert expected == TRITON_COMPLETION
    answer = client.completions.create(model="tiny_llm", prompt=PROMPT, max_tokens=12)
    assert answer.object == "text_completion"
    assert answer.choices[0].text == expected
    assert answer.choices[0].finish_reason == "length"
    # word-level tokenizer: 8 words in, 12 out
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (8, 12, 20)
    streamed = client.completions.create(model="tiny_llm", prompt=PROMPT, max_tokens=12, stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == expected
    assert len(chunks) == 13  # one per word, then the finish
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_matches_generate_stream(client, server):
    expected = generate_stream_text(server, "tiny_llm", CHAT_PROMPT, 10)
    assert expected == TRITON_CHAT
    answer = client.chat.completions.create(model="tiny_llm", messages=CHAT, max_completion_tokens=10)
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected
    assert answer.usage.completion_tokens == 10
    assert answer.usage.prompt_tokens == 13  # "system : be brief user : what does the keeper do assistant :"
    stream = client.chat.completions.create(
        model="tiny_llm", messages=CHAT, max_tokens=10, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 23


def test_async_client_streams_concurrently(server):
    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=server.openai, api_key="none", max_retries=0) as aclient:

            async def one(prompt: str) -> str:
                stream = await aclient.chat.completions.create(
                    model="tiny_llm", messages=[{"role": "user", "content": prompt}], max_tokens=6, stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            whole = await aclient.chat.completions.create(
                model="tiny_llm", messages=[{"role": "user", "content": "the light"}], max_tokens=6
            )
            streamed = await asyncio.gather(*(one(p) for p in ["the light", "the ships", "the light"]))
            return [whole.choices[0].message.content, *streamed]

    whole, light, ships, light_again = asyncio.run(main())
    assert whole == light == light_again
    assert ships != light


def test_raw_sse_ends_with_done_on_the_http_port(server):
    body = {"model": "tiny_llm", "prompt": "the sea", "max_tokens": 3, "stream": True}
    answer = requests.post(f"http://{server.http}/v1/completions", json=body, timeout=30, stream=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [line for line in answer.iter_lines(decode_unicode=True) if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]


def test_stop_n_seed_temperature_echo(client, server):
    free = client.completions.create(model="tiny_llm", prompt="the keeper", max_tokens=16).choices[0].text
    stop_word = free.split()[3]
    stopped = client.completions.create(model="tiny_llm", prompt="the keeper", max_tokens=16, stop=[stop_word])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == free[: free.index(stop_word)]
    streamed = client.completions.create(model="tiny_llm", prompt="the keeper", max_tokens=16, stop=stop_word,
                                         stream=True)  # fmt: skip
    assert "".join(c.choices[0].text for c in streamed) == stopped.choices[0].text
    echoed = client.completions.create(model="tiny_llm", prompt="the keeper", max_tokens=16, echo=True)
    assert echoed.choices[0].text == "the keeper" + free
    several = client.completions.create(
        model="tiny_llm", prompt=["the keeper", "the sea"], max_tokens=8, n=3, temperature=1.5, seed=7
    )
    assert [c.index for c in several.choices] == list(range(6))
    again = client.completions.create(
        model="tiny_llm", prompt=["the keeper", "the sea"], max_tokens=8, n=3, temperature=1.5, seed=7
    )
    assert [c.text for c in several.choices] == [c.text for c in again.choices]  # the seed repeats them
    stream = client.chat.completions.create(model="tiny_llm", messages=CHAT, max_tokens=5, n=2, stream=True)
    texts = {0: "", 1: ""}
    for chunk in stream:
        texts[chunk.choices[0].index] += chunk.choices[0].delta.content or ""
    assert texts[0] == texts[1] == generate_stream_text(server, "tiny_llm", CHAT_PROMPT, 5)


def test_long_prompts_and_too_many_choices(client):
    long = client.completions.create(model="tiny_llm", prompt="the sea " * 20000, max_tokens=2)  # counted off the loop
    assert long.usage.prompt_tokens == 40000 and long.usage.completion_tokens == 2
    with pytest.raises(openai.BadRequestError) as too_many:
        client.completions.create(model="tiny_llm", prompt=["a"] * 5, n=128, max_tokens=1)
    assert "at most 512 choices" in too_many.value.body["message"]


def test_sampling_parameters_reach_the_model(client):
    answer = client.completions.create(
        model="one_shot", prompt="hi", max_tokens=5, temperature=0.5, top_p=0.9, seed=3,
        extra_body={"top_k": 4},
    )  # fmt: skip
    text = answer.choices[0].text
    assert text.startswith("echo:hi:")
    assert json.loads(text[len("echo:hi:") :]) == {
        "max_tokens": 5, "seed": 3, "temperature": 0.5, "top_k": 4, "top_p": 0.9,
    }  # fmt: skip
    assert answer.usage is None  # neither a tokenizer nor the model counts tokens
    cut = client.completions.create(model="one_shot", prompt="hi", max_tokens=5, stop="max")
    assert cut.choices[0].text == 'echo:hi:{"' and cut.choices[0].finish_reason == "stop"  # stopped here too
    streamed = list(client.completions.create(model="one_shot", prompt="hi", max_tokens=2, stream=True))
    assert "".join(c.choices[0].text for c in streamed).startswith("echo:hi:")


def test_logprobs_from_the_model(client):
    chat = client.chat.completions.create(model="logprob_llm", messages=CHAT, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert [(t.token, t.logprob) for t in content] == [("a", -0.1), (" b", -0.2)]
    assert [(t.token, t.logprob) for t in content[0].top_logprobs] == [("a", -0.1), ("x", -2.0)]
    assert content[1].bytes == list(b" b")
    assert client.chat.completions.create(model="logprob_llm", messages=CHAT).choices[0].logprobs is None
    completion = client.completions.create(model="logprob_llm", prompt="p", logprobs=1)
    logprobs = completion.choices[0].logprobs
    assert logprobs.tokens == ["a", " b"] and logprobs.token_logprobs == [-0.1, -0.2]
    assert logprobs.top_logprobs == [{"a": -0.1}, {" b": -0.2}] and logprobs.text_offset == [0, 1]
    streamed = list(client.chat.completions.create(model="logprob_llm", messages=CHAT, logprobs=True, stream=True))
    tokens = [t.token for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens == ["a", " b"]


def test_embeddings(client):
    answer = client.embeddings.create(model="tiny_embed", input=["the sea", "the light", "the sea"])
    vectors = [np.array(d.embedding) for d in answer.data]
    assert [d.index for d in answer.data] == [0, 1, 2]
    assert all(v.shape == (64,) and abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert answer.usage.prompt_tokens == 6
    encoded = client.embeddings.create(model="tiny_embed", input="the sea", encoding_format="base64")
    raw = encoded.data[0].embedding
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4") if isinstance(raw, str) else np.array(raw)
    assert np.allclose(decoded, vectors[0])


def test_errors_are_openai_shaped(client, server):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=CHAT)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as no_template:
        client.chat.completions.create(model="plain_llm", messages=CHAT)
    assert "has no chat template" in no_template.value.body["message"]
    with pytest.raises(openai.BadRequestError) as not_text:
        client.completions.create(model="tiny_embed", prompt="x")
    assert "is no text model" in not_text.value.body["message"]
    with pytest.raises(openai.BadRequestError) as bad_n:
        client.completions.create(model="tiny_llm", prompt="x", n=0)
    assert bad_n.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny_llm", messages=CHAT, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])  # fmt: skip
    for url in (server.openai, f"http://{server.http}/v1"):
        bad_json = requests.post(f"{url}/chat/completions", data=b"{nope", timeout=5)
        assert bad_json.status_code == 400
        assert set(bad_json.json()["error"]) == {"message", "type", "param", "code"}
        not_object = requests.post(f"{url}/embeddings", json=[1, 2], timeout=5)
        assert not_object.status_code == 400
    unknown = requests.get(f"{server.openai}/nothing", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    # plain prompts still work on the model without a template; usage is null without a tokenizer
    plain = client.completions.create(model="plain_llm", prompt=PROMPT, max_tokens=4)
    assert plain.usage is None and plain.choices[0].finish_reason == "stop"


def test_allow_openai_false_turns_the_routes_off(tmp_path):
    port = free_port()
    running = RunningServer([EXAMPLE], "--allow-openai=false", f"--openai-port={port}")
    try:
        assert requests.get(f"http://{running.http}/v1/models", timeout=5).status_code == 404
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
    finally:
        running.stop()
