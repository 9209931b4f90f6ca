"""Writes examples/llm_repository: a tiny streaming text model and an embedding model, with tokenizers.

    .venv/bin/python scripts/make_llm_example.py

Needs the `tokenizers` package (the `llm` extra). Everything is built from the short text below, so
the output is the same every time and nothing is downloaded, then or when the models are served:

- ``tiny_llm``: a decoupled python model, Triton's OpenAI-frontend contract (``text_input``,
  ``stream``, ``sampling_parameters``, ``exclude_input_in_output`` in; ``text_output`` out). A
  word-level trigram model continues the prompt one word per response; greedy unless
  ``temperature`` > 0 (then sampled, repeatably with ``seed``).
- ``tiny_embed``: hashed bag-of-words vectors (64 FP32 values, unit length) of ``text_input``.

Both name a word-level tokenizer folder (``tokenizer/tokenizer.json``) in their config parameters,
and ``tiny_llm`` a Jinja chat template; the OpenAI routes count tokens and format chats with them.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parents[1] / "examples" / "llm_repository"

CORPUS = """
The lighthouse stands on the rock at the end of the harbour. Every night the keeper climbs the stairs
and lights the lamp. The light turns over the water and the ships see it from far away. When the fog
comes in from the sea, the keeper sounds the horn, and the ships slow down and wait for the morning.
The sea is calm in summer and wild in winter. In summer the children swim near the harbour and the
boats go out to fish. In winter the waves climb the rock and the wind sings in the windows of the
lighthouse. The keeper writes in a book every evening: the weather, the ships that passed, the
colour of the sky. The book is old and the pages are full of small careful words.
A model is a small machine that reads words and writes words. This model learned from one short
story about a lighthouse, so it likes to talk about the sea, the light and the keeper. It answers
one word at a time, and each word is sent to you as soon as it is ready. That is what streaming
means: you see the answer grow while the model is still writing it.
Tritonlite serves the model. It reads the request, asks the model for words, and sends every word
back to the client as a server-sent event. The client can stop reading at any time, and then the
server stops asking the model for more words.
"""

WORD = re.compile(r"\w+|[^\w\s]+")  # the same split as the tokenizer's Whitespace pre-tokenizer
SPECIAL = ["[UNK]", "<s>", "</s>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

LLM_CONFIG = """# A tiny decoupled text model with Triton's OpenAI-frontend contract; see model.py.
name: "tiny_llm"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true },
  { name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] optional: true },
  { name: "exclude_input_in_output" data_type: TYPE_BOOL dims: [ 1 ] optional: true }
]
output [
  { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] }
]
instance_group [ { count: 1 kind: KIND_CPU } ]
# tritonlite's OpenAI routes: the tokenizer folder and chat template, relative to this folder
parameters { key: "tokenizer" value { string_value: "tokenizer" } }
parameters { key: "chat_template" value { string_value: "chat_template.jinja" } }
"""

EMBED_CONFIG = """# Hashed bag-of-words text embeddings: 64 FP32 values of unit length per text.
name: "tiny_embed"
backend: "python"
max_batch_size: 0
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "embedding" data_type: TYPE_FP32 dims: [ 64 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters { key: "tokenizer" value { string_value: "tokenizer" } }
"""

LLM_MODEL = '''"""tiny_llm: continues a prompt one word per response with a word-level trigram table (ngrams.json).

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

WORD = re.compile(r"\\w+|[^\\w\\s]+")
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
'''

EMBED_MODEL = '''"""tiny_embed: a hashed bag of words (64 FP32 values, unit length) per text_input."""
import re
import zlib

import numpy as np
import triton_python_backend_utils as pb_utils

WORD = re.compile(r"\\w+")
SIZE = 64


def embed(text):
    vector = np.zeros(SIZE, dtype=np.float32)
    for word in WORD.findall(text.lower()):
        code = zlib.crc32(word.encode("utf-8"))
        vector[code % SIZE] += 1.0 if (code >> 16) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            vector = embed(text.decode("utf-8"))
            answers.append(pb_utils.InferenceResponse([pb_utils.Tensor("embedding", vector)]))
        return answers
'''


def ngrams(words: list[str]) -> dict:
    """Next-word counts after each word and each pair, most frequent first (ties alphabetical)."""
    bigrams: dict[str, Counter] = defaultdict(Counter)
    trigrams: dict[str, Counter] = defaultdict(Counter)
    for i in range(len(words) - 1):
        bigrams[words[i]][words[i + 1]] += 1
        if i + 2 < len(words):
            trigrams[f"{words[i]} {words[i + 1]}"][words[i + 2]] += 1

    def ordered(table: dict[str, Counter]) -> dict[str, list]:
        return {k: sorted(v.items(), key=lambda kv: (-kv[1], kv[0])) for k, v in sorted(table.items())}

    return {"start": "the", "bigrams": ordered(bigrams), "trigrams": ordered(trigrams)}


def tokenizer(words: list[str]) -> Tokenizer:
    """A word-level tokenizer whose vocabulary is the corpus' words (lowercased), plus [UNK], <s>, </s>."""
    vocab = {token: i for i, token in enumerate(SPECIAL)}
    for word in sorted(set(words)):
        vocab[word] = len(vocab)
    result = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    result.normalizer = normalizers.Lowercase()
    result.pre_tokenizer = pre_tokenizers.Whitespace()
    return result


def write_tokenizer(folder: Path, words: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer(words).save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "[UNK]", "model_max_length": 2048}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    words = WORD.findall(CORPUS.lower())
    llm = ROOT / "tiny_llm"
    (llm / "1").mkdir(parents=True, exist_ok=True)
    (llm / "config.pbtxt").write_text(LLM_CONFIG)
    (llm / "1" / "model.py").write_text(LLM_MODEL)
    (llm / "1" / "ngrams.json").write_text(json.dumps(ngrams(words), separators=(",", ":")) + "\n")
    (llm / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    write_tokenizer(llm / "tokenizer", words)
    embed = ROOT / "tiny_embed"
    (embed / "1").mkdir(parents=True, exist_ok=True)
    (embed / "config.pbtxt").write_text(EMBED_CONFIG)
    (embed / "1" / "model.py").write_text(EMBED_MODEL)
    write_tokenizer(embed / "tokenizer", words)
    print(f"wrote {ROOT}")


if __name__ == "__main__":
    main()
