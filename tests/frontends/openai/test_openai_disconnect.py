"""A client that leaves an OpenAI stream midway: the route closes the model's stream, the core cancels
the request and the model, which checks ``is_cancelled()`` between tokens, stops being asked."""

from __future__ import annotations

import json
import time

import pytest
import requests
from serverutil import RunningServer, free_port

openai = pytest.importorskip("openai")

MODEL = """
import json, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            params = json.loads(pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
                                .as_numpy().reshape(-1)[0])
            prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            for i in range(params["max_tokens"]):
                if sender.is_cancelled():
                    break
                if prompt == b"fail" and i == 2:
                    sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("failed at 2")),
                                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                    return None
                with open(params["log_path"], "a") as log:
                    log.write(f"{i}\\n")
                sender.send(pb_utils.InferenceResponse([
                    pb_utils.Tensor("text_output", np.array([b" tok"], dtype=np.object_))]))
                time.sleep(0.03)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""
CONFIG = """
name: "slow_llm"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "stream" data_type: TYPE_BOOL dims: [ 1 ] },
  { name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] }
]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] } ]
"""
MAX_TOKENS = 400  # 12 s of tokens: far more than the test waits


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("slow_repo")
    (repo / "slow_llm" / "1").mkdir(parents=True)
    (repo / "slow_llm" / "1" / "model.py").write_text(MODEL)
    (repo / "slow_llm" / "config.pbtxt").write_text(CONFIG)
    running = RunningServer([repo], f"--openai-port={free_port()}")
    yield running
    running.stop()


def settled_count(log, timeout: float = 15.0) -> int:
    """The model's token count once it stops growing for a second (or at the timeout)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(log.read_text().splitlines()) if log.exists() else 0
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 1.0:
            break
        time.sleep(0.1)
    return last


def test_raw_client_leaving_stops_the_model(server, tmp_path):
    log = tmp_path / "raw.log"
    body = {"model": "slow_llm", "prompt": "x", "max_tokens": MAX_TOKENS, "stream": True, "log_path": str(log)}
    answer = requests.post(f"http://{server.http}/v1/completions", json=body, stream=True, timeout=30)
    lines = answer.iter_lines()
    received = [next(lines) for _ in range(6)]  # three events and their blank lines
    assert all(line.startswith(b"data: ") for line in received[::2])
    answer.close()
    produced = settled_count(log)
    assert 3 <= produced < MAX_TOKENS


def test_openai_client_closing_its_stream_stops_the_model(server, tmp_path):
    log = tmp_path / "client.log"
    client = openai.OpenAI(base_url=f"http://{server.http}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError):  # slow_llm names no chat template: refused, no stream starts
        client.chat.completions.create(
            model="slow_llm", messages=[{"role": "user", "content": "x"}], max_tokens=MAX_TOKENS, stream=True,
            extra_body={"log_path": str(log)},
        )  # fmt: skip
    stream = client.completions.create(
        model="slow_llm", prompt="x", max_tokens=MAX_TOKENS, stream=True, extra_body={"log_path": str(log)}
    )
    texts = []
    for chunk in stream:
        texts.append(chunk.choices[0].text)
        if len(texts) == 4:
            break
    stream.close()
    assert texts == [" tok"] * 4
    produced = settled_count(log)
    assert 4 <= produced < MAX_TOKENS
    # the server still serves: a short stream runs to its end
    short = client.completions.create(model="slow_llm", prompt="x", max_tokens=3, extra_body={"log_path": str(log)})
    assert short.choices[0].text == " tok" * 3


def test_an_error_midway_is_an_error_event(server, tmp_path):
    body = {"model": "slow_llm", "prompt": "fail", "max_tokens": 5, "stream": True, "log_path": str(tmp_path / "l")}
    answer = requests.post(f"http://{server.http}/v1/completions", json=body, timeout=30)
    events = [line[6:] for line in answer.text.splitlines() if line.startswith("data: ")]
    assert answer.status_code == 200 and len(events) == 3
    assert [json.loads(e)["choices"][0]["text"] for e in events[:2]] == [" tok", " tok"]
    assert json.loads(events[2]) == {"error": {"message": "failed at 2", "type": "server_error", "param": None,
                                               "code": None}}  # fmt: skip
    whole = requests.post(f"http://{server.http}/v1/completions", json={**body, "stream": False}, timeout=30)
    assert whole.status_code == 500 and whole.json()["error"]["message"] == "failed at 2"
