"""tiny_llm: continues a prompt one word per response with a word-level trigram table (ngrams.json).

Inputs as Triton's OpenAI frontend sends them: text_input, stream (one response per word, else one
response with the whole text), sampling_parameters (JSON: max_tokens, temperature, seed, stop, and
delay_ms, a pause before each word for demos of streaming, 0 by default), exclude_input_in_output (false: the
prompt comes first). It stops early when the client cancels the request.
"""
import json
import re
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

WORD = re.compile(r"\w+|[^\w\s]+")
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _input(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0]


def _join(words):
    return "".join(w if not w[0].isalnum() else " " + w for w in words)


class TritonPythonModel:
    def initialize(self, args):
        table = json.loads((Path(__file__).parent / "ngrams.json").read_text())
        self.start = table["start"]
        self.bigrams = table["bigrams"]
        self.trigrams = table["trigrams"]

    def _next(self, previous, word, rng, temperature):
        options = self.trigrams.get(previous + " " + word) or self.bigrams.get(word) or self.bigrams[self.start]
        if temperature <= 0:
            return options[0][0]  # the most frequent; ties broken alphabetically by the script
        counts = np.array([count for _, count in options], dtype=np.float64) ** (1.0 / temperature)
        return options[rng.choice(len(options), p=counts / counts.sum())][0]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except Exception as exc:  # the request's error, the model stays up
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)
        return None

    def _generate(self, request, sender):
        prompt = _input(request, "text_input", b"").decode("utf-8")
        stream = bool(_input(request, "stream", False))
        exclude_input = bool(_input(request, "exclude_input_in_output", True))
        parameters = json.loads(_input(request, "sampling_parameters", b"{}") or b"{}")
        max_tokens = int(parameters.get("max_tokens", 16))
        temperature = float(parameters.get("temperature", 0.0) or 0.0)
        delay = float(parameters.get("delay_ms", 0)) / 1000.0
        stop = parameters.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        rng = np.random.default_rng(parameters.get("seed"))
        known = [w for w in WORD.findall(prompt.lower()) if w in self.bigrams and w[0].isalnum()]
        previous, word = (known[-2], known[-1]) if len(known) > 1 else ("", known[-1] if known else self.start)
        generated = ""
        pending = "" if exclude_input else prompt  # not sent yet
        for _ in range(max_tokens):
            if sender.is_cancelled():
                break
            time.sleep(delay)  # even 0 lets other threads run: in thread mode the server's loop shares the GIL
            previous, word = word, self._next(previous, word, rng, temperature)
            piece = _join([word])
            cuts = [(generated + piece).find(s) for s in stop if s and s in generated + piece]
            if cuts:  # the answer ends before the stop string, which is not sent
                pending += piece[: min(cuts) - len(generated)]
                break
            generated += piece
            pending += piece
            if stream:
                sender.send(pb_utils.InferenceResponse([_text(pending)]))
                pending = ""
        if stream:
            if pending:
                sender.send(pb_utils.InferenceResponse([_text(pending)]))
            sender.send(flags=FINAL)
        else:
            sender.send(pb_utils.InferenceResponse([_text(pending)]), flags=FINAL)


def _text(value):
    return pb_utils.Tensor("text_output", np.array([value.encode("utf-8")], dtype=np.object_))
