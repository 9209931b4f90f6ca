"""The model contract of Triton's OpenAI frontend: which tensors go in and come out.

A text model takes ``text_input`` (BYTES) and, where its config declares them, ``stream`` (BOOL),
``sampling_parameters`` (BYTES, JSON), ``exclude_input_in_output`` (BOOL),
``return_num_input_tokens`` / ``return_num_output_tokens`` (BOOL); it answers ``text_output``
(BYTES; in a stream each response is the next piece of text) and optionally ``num_input_tokens``,
``num_output_tokens`` and ``logprobs`` (BYTES, vLLM's JSON). An embedding model takes
``text_input`` and answers an FP32 output (or, as Triton's vLLM embeddings, ``text_output`` holding
the vector as JSON).
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tritonlite.core.datatypes import bytes_array
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.frontends.openai.errors import bad_request, server_error
from tritonlite.models.model import ModelVersion

TEXT_INPUT = "text_input"
TEXT_OUTPUT = "text_output"


def _tensor(model: ModelVersion, name: str, data: np.ndarray) -> InferTensor:
    """One element shaped as the model declares the input (a batch of one where it batches)."""
    spec = model.inputs[name]
    shape = [1] * len(spec.dims) if spec.dims else [1]
    if model.max_batch_size > 0:
        shape = [1, *shape]
    return InferTensor(name, spec.datatype, shape, data.reshape(shape))


def _text(value: str) -> np.ndarray:
    return bytes_array([value.encode("utf-8")], [1])


@dataclass
class TextModel:
    """A model that takes ``text_input`` and answers ``text_output``."""

    model: ModelVersion

    @classmethod
    def of(cls, model: ModelVersion) -> TextModel:
        if TEXT_INPUT not in model.inputs or TEXT_OUTPUT not in model.outputs:
            raise bad_request(
                f"model '{model.name}' is no text model: it must take '{TEXT_INPUT}' and answer '{TEXT_OUTPUT}'",
                param="model",
            )
        return cls(model)

    @property
    def returns_logprobs(self) -> bool:
        return "logprobs" in self.model.outputs

    def request(self, prompt: str, stream: bool, sampling: dict[str, Any], exclude_input: bool) -> InferRequest:
        model = self.model
        request = InferRequest(model.name, model.version_str)
        inputs = request.inputs
        inputs.append(_tensor(model, TEXT_INPUT, _text(prompt)))
        declared = model.inputs
        if "stream" in declared:
            inputs.append(_tensor(model, "stream", np.array([stream], dtype=np.bool_)))
        if "sampling_parameters" in declared:
            inputs.append(_tensor(model, "sampling_parameters", _text(json.dumps(sampling))))
        if "exclude_input_in_output" in declared:
            inputs.append(_tensor(model, "exclude_input_in_output", np.array([exclude_input], dtype=np.bool_)))
        for name in ("return_num_input_tokens", "return_num_output_tokens"):
            if name in declared:
                inputs.append(_tensor(model, name, np.array([True], dtype=np.bool_)))
        return request


def _output(response: InferResponse, name: str) -> InferTensor | None:
    for tensor in response.outputs:
        if tensor.name == name:
            return tensor
    return None


class TextReader:
    """Reads the text of one request's responses; a character split across two responses stays whole."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def text(self, response: InferResponse, final: bool) -> str:
        tensor = _output(response, TEXT_OUTPUT)
        if tensor is None:
            return self.text_end() if final else ""
        elements = np.asarray(tensor.data).reshape(-1)
        raw = b"".join(e if isinstance(e, bytes) else str(e).encode("utf-8") for e in elements)
        return self._decoder.decode(raw, final)

    def text_end(self) -> str:
        """What an unfinished character at the end leaves (U+FFFD), or nothing."""
        return self._decoder.decode(b"", True)


def token_count(response: InferResponse, name: str) -> int | None:
    """``num_input_tokens`` or ``num_output_tokens`` where the model answers it."""
    tensor = _output(response, name)
    if tensor is None:
        return None
    values = np.asarray(tensor.data).reshape(-1)
    return int(values[0]) if values.size else None


def logprobs(response: InferResponse) -> list[dict] | None:
    """vLLM's per-token logprobs (``[{token_id: {logprob, rank, decoded_token}}, ...]``), if answered."""
    tensor = _output(response, "logprobs")
    if tensor is None:
        return None
    values = np.asarray(tensor.data).reshape(-1)
    if not values.size:
        return None
    try:
        document = json.loads(values[0])
    except (TypeError, ValueError):
        raise server_error(f"model '{response.model_name}' answered logprobs that are not JSON") from None
    return document if isinstance(document, list) else None


@dataclass
class EmbeddingModel:
    """A model that takes ``text_input`` and answers a vector."""

    model: ModelVersion
    output: str

    @classmethod
    def of(cls, model: ModelVersion) -> EmbeddingModel:
        if TEXT_INPUT not in model.inputs:
            raise bad_request(f"model '{model.name}' takes no '{TEXT_INPUT}'", param="model")
        vectors = [name for name, spec in model.outputs.items() if spec.datatype == "FP32"]
        if vectors:
            return cls(model, vectors[0])
        if TEXT_OUTPUT in model.outputs:
            return cls(model, TEXT_OUTPUT)
        raise bad_request(f"model '{model.name}' answers no FP32 vector", param="model")

    def request(self, text: str) -> InferRequest:
        request = InferRequest(self.model.name, self.model.version_str)
        request.inputs.append(_tensor(self.model, TEXT_INPUT, _text(text)))
        return request

    def vector(self, response: InferResponse) -> np.ndarray:
        tensor = _output(response, self.output)
        if tensor is None:
            raise server_error(f"model '{self.model.name}' answered no '{self.output}'")
        if self.output == TEXT_OUTPUT and tensor.datatype == "BYTES":
            try:
                return np.asarray(json.loads(np.asarray(tensor.data).reshape(-1)[0]), dtype=np.float32)
            except (TypeError, ValueError, IndexError):
                raise server_error(f"model '{self.model.name}' answered a vector that is not JSON") from None
        return np.asarray(tensor.data, dtype=np.float32).reshape(-1)
