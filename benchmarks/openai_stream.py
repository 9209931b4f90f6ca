"""Streaming tokens through tritonlite's OpenAI route and generate_stream, against the same model in process
and Triton 2.51's generate_stream.

    .venv/bin/python benchmarks/openai_stream.py [--tokens 200] [--requests 20] [--no-triton]

The model is examples/llm_repository's tiny_llm (a decoupled python model: one response per word,
greedy, so every request produces exactly ``--tokens`` words). One request at a time, each path
after 3 warm-up requests. One request at a time: time to first token (TTFT, from sending the request
to the first event carrying text; median and minimum, as a busy machine adds milliseconds) and
tokens/s of a request. Then ``--concurrency`` streams at once: the tokens/s all of them get. The
model makes a token in microseconds, so the numbers are the server's own cost. Paths:

- ``in-process``: ``Engine.infer_stream`` in this process (no HTTP): the floor of the server's own work;
- ``tritonlite chat``: ``POST /v1/chat/completions`` with ``stream: true`` on the HTTP port;
- ``tritonlite generate_stream``: ``POST /v2/models/tiny_llm/generate_stream``;
- ``triton generate_stream``: the same request to the real Triton (skipped when it is not installed;
  see benchmarks/reference.py).

The HTTP clients are ``http.client`` reading the event stream line by line, the same for every
server. Writes benchmarks/results/openai_stream.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import launch, stop  # noqa: E402
from reference import triton_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "examples" / "llm_repository"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "tiny_llm"
PROMPT = "tell me about the keeper and the sea"
CHAT_PROMPT = f"user: {PROMPT}\nassistant:"  # the model's chat template, rendered
WARMUP = 3
PORTS = (18100, 18101, 18102)  # tritonlite; Triton gets 18000-18002


def _sampling(tokens: int) -> str:
    return json.dumps({"max_tokens": tokens})


Run = tuple[float, float, float, int]  # seconds to the first text event, to the last, in all; text events


def sse_request(port: int, path: str, body: dict, text_key: str) -> Run:
    """One streamed request, read line by line."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body).encode()
    began = time.perf_counter()
    connection.request("POST", path, payload, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    if answer.status != 200:
        raise RuntimeError(f"{path}: {answer.status} {answer.read()[:300]!r}")
    first = last = None
    events = 0
    key, empty = text_key.encode(), b'"' + text_key.encode() + b'":""'
    while True:
        line = answer.readline()
        if not line:
            break
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        if key in line and empty not in line:
            events += 1
            last = time.perf_counter() - began
            if first is None:
                first = last
    total = time.perf_counter() - began
    connection.close()
    return first or total, last or total, total, events


def chat_body(tokens: int) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "stream": True}


def generate_body(tokens: int) -> dict:
    return {"text_input": CHAT_PROMPT, "stream": True, "exclude_input_in_output": True,
            "sampling_parameters": _sampling(tokens)}  # fmt: skip


def summarize(name: str, runs: list[Run], tokens: int, wall: float, concurrent: int) -> dict:
    counts = {run[3] for run in runs}
    if counts != {tokens}:
        raise RuntimeError(f"{name}: expected {tokens} text events per request, saw {sorted(counts)}")
    return {
        "path": name,
        "ttft_ms": statistics.median(first for first, *_ in runs) * 1000,
        "ttft_min_ms": min(first for first, *_ in runs) * 1000,
        "tokens_per_s": statistics.median(tokens / total for _, _, total, _ in runs),
        "concurrent_tokens_per_s": concurrent * tokens / wall,
        "requests": len(runs),
    }


def over_http(name: str, port: int, path: str, body: dict, key: str, args: argparse.Namespace) -> dict:
    for _ in range(WARMUP):
        sse_request(port, path, body, key)
    runs = [sse_request(port, path, body, key) for _ in range(args.requests)]
    total = args.concurrency * args.rounds
    with ThreadPoolExecutor(args.concurrency) as pool:
        began = time.perf_counter()
        list(pool.map(lambda _: sse_request(port, path, body, key), range(total)))
        wall = time.perf_counter() - began
    return summarize(name, runs, args.tokens, wall, total)


def in_process(args: argparse.Namespace) -> dict:
    tokens = args.tokens
    import numpy as np

    from tritonlite.core.datatypes import bytes_array
    from tritonlite.core.types import InferRequest, InferTensor
    from tritonlite.engine import Engine, EngineOptions

    def request() -> InferRequest:
        core = InferRequest(MODEL)
        core.inputs = [
            InferTensor("text_input", "BYTES", [1], bytes_array([CHAT_PROMPT.encode()], [1])),
            InferTensor("stream", "BOOL", [1], np.array([True])),
            InferTensor("sampling_parameters", "BYTES", [1], bytes_array([_sampling(tokens).encode()], [1])),
            InferTensor("exclude_input_in_output", "BOOL", [1], np.array([True])),
        ]
        return core

    async def one(engine: Engine) -> Run:
        began = time.perf_counter()
        first = last = 0.0
        events = 0
        async for response, _final in engine.infer_stream(request()):
            if response is not None:
                events += 1
                last = time.perf_counter() - began
                if events == 1:
                    first = last
        return first, last, time.perf_counter() - began, events

    async def main() -> tuple[list[Run], float]:
        engine = Engine(EngineOptions([REPOSITORY]))
        await engine.start()
        try:
            for _ in range(WARMUP):
                await one(engine)
            runs = [await one(engine) for _ in range(args.requests)]

            async def worker() -> None:
                for _ in range(args.rounds):
                    await one(engine)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            return runs, time.perf_counter() - began
        finally:
            await engine.stop()

    runs, wall = asyncio.run(main())
    return summarize("in-process (Engine.infer_stream)", runs, tokens, wall, args.concurrency * args.rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="streams at once, for the concurrent tokens/s")
    parser.add_argument("--rounds", type=int, default=5, help="requests per stream in the concurrent run")
    parser.add_argument("--no-triton", action="store_true", help="skip the real Triton")
    args = parser.parse_args()
    tokens, requests = args.tokens, args.requests
    rows = [in_process(args)]
    process, _ = launch("tritonlite", REPOSITORY, PORTS, ("-m", "tritonlite", "--openai-port=18103"))
    try:
        rows.append(over_http("tritonlite /v1/chat/completions", PORTS[0], "/v1/chat/completions", chat_body(tokens),
                              "content", args))  # fmt: skip
        rows.append(over_http("tritonlite generate_stream", PORTS[0], f"/v2/models/{MODEL}/generate_stream",
                              generate_body(tokens), "text_output", args))  # fmt: skip
    finally:
        stop(process)
    if not args.no_triton:
        if triton_command() is None:
            print("Triton not installed (see benchmarks/reference.py): its row is left out", file=sys.stderr)
        else:
            process, _ = launch("triton", REPOSITORY, (18000, 18001, 18002))
            try:
                rows.append(over_http("Triton 2.51 generate_stream", 18000, f"/v2/models/{MODEL}/generate_stream",
                                      generate_body(tokens), "text_output", args))  # fmt: skip
            finally:
                stop(process)
    print(f"tiny_llm, {tokens} tokens per request; {requests} requests one at a time, then "
          f"{args.concurrency} streams at once x {args.rounds}\n")  # fmt: skip
    print("| path | TTFT ms median (min) | tokens/s, one stream | tokens/s, concurrent | vs in-process |")
    print("|---|---|---|---|---|")
    base = rows[0]["concurrent_tokens_per_s"]
    for row in rows:
        print(f"| {row['path']} | {row['ttft_ms']:.2f} ({row['ttft_min_ms']:.2f}) | {row['tokens_per_s']:.0f} | "
              f"{row['concurrent_tokens_per_s']:.0f} | {row['concurrent_tokens_per_s'] / base:.2f} |")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openai_stream.json").write_text(json.dumps({"tokens": tokens, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
