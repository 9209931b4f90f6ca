"""ModelInfer heads seen before: the request without its tensor bytes, decoded once.

A client in a loop sends the same ModelInferRequest again and again apart from the tensor bytes
(perf_analyzer does, and so does any client over same-shaped inputs). ``wire.split_raw``
cuts the raw contents out, so what is left, the head, is the same bytes each time. The cache
keeps what a head decodes to and builds the next request from it and the new tensor views: no
protobuf parsing, no field checks. Requests built from an entry carry it as their
``validation_key``, so a loaded model version validates a head once (the outcome depends only on
the head and the model's config, both unchanged).

The answers repeat too: while the model, version and the outputs' names, types and shapes stay
the same, the serialized response without its raw outputs is the same bytes, and is reused.

Only plain heads are kept: every input sent as raw contents of a fixed-size type, no request id,
no parameters on an input or an output (shared memory, classification), and request parameters
only of the kind a model reads (none that schedules: priority, timeout, sequence). Anything else
is decoded every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tritonlite.core.datatypes import ELEMENT_SIZE, tensor_buffer
from tritonlite.core.types import InferRequest, InferResponse, RequestedOutput
from tritonlite.frontends.grpc.codec import decode_request, parse_head
from tritonlite.frontends.input_layout import InputLayout
from tritonlite.protocol import grpc_service_pb2 as pb

DEFAULT_LIMIT = 512  # entries; the cache starts over when full (a client with ever-new heads)


class CachedAnswer(NamedTuple):
    """The last answer's serialized message without raw outputs, reused while its outputs keep their layout."""

    model_name: str
    model_version: str
    layout: list[tuple[str, str, tuple[int, ...]]]  # (name, datatype, shape) per output
    message: bytes


class DecodedHead:
    """What one plain ModelInferRequest head decodes to, without the tensor bytes."""

    __slots__ = ("model_name", "model_version", "parameters", "inputs", "outputs", "_answer")

    def __init__(
        self,
        model_name: str,
        model_version: str,
        parameters: dict[str, bool | int | float | str],
        inputs: tuple[InputLayout, ...],
        outputs: tuple[str, ...] | None,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.parameters = parameters  # the model's own ones (tritonclient sends triton_enable_empty_final_response)
        self.inputs = inputs
        self.outputs = outputs  # None when the head names no outputs
        self._answer: CachedAnswer | None = None

    @classmethod
    def of(cls, message: pb.ModelInferRequest, request: InferRequest, raw_count: int) -> DecodedHead | None:
        """The entry for a head that ``codec.decode_request`` turned into ``request`` with ``raw_count``
        raw contents; None if it is not plain."""
        if message.id or not raw_count or not len(request.inputs) == len(message.inputs) == raw_count:
            return None
        if request.priority or request.timeout_us or request.correlation_id or request.flags:
            return None  # scheduling parameters: decoded every time
        if any(not isinstance(value, (bool, int, float, str)) for value in request.parameters.values()):
            return None
        inputs = []
        for item, tensor in zip(message.inputs, request.inputs, strict=True):
            if item.parameters or not ELEMENT_SIZE.get(tensor.datatype):  # shared memory, BYTES, unknown type
                return None
            layout = InputLayout.of(tensor)
            if layout.size != layout.count * ELEMENT_SIZE[tensor.datatype]:
                return None  # a size error: decoded afresh each time, for the error
            inputs.append(layout)
        outputs = None
        if message.outputs:
            if any(item.parameters for item in message.outputs):
                return None  # classification or shared memory
            outputs = tuple(item.name for item in message.outputs)
        return cls(message.model_name, message.model_version, dict(request.parameters), tuple(inputs), outputs)

    def build(self, raw: Sequence[memoryview]) -> InferRequest | None:
        """A request of this head with ``raw`` as its tensor bytes; None if they do not fit its inputs."""
        layouts = self.inputs
        if len(raw) != len(layouts):
            return None
        request = InferRequest(self.model_name, self.model_version)
        request.validation_key = self
        if self.parameters:
            request.parameters = dict(self.parameters)
        tensors = request.inputs
        for layout, chunk in zip(layouts, raw, strict=True):
            if len(chunk) != layout.size:
                return None  # decoded afresh, for the error
            tensors.append(layout.tensor(chunk))
        if self.outputs is not None:
            request.outputs = [RequestedOutput(name) for name in self.outputs]
        return request

    def encode(self, response: InferResponse) -> bytes | None:
        """The answer to a request of this head as ``wire.join_response`` parts' first item (the message
        without raw outputs), reused from the last answer when the outputs match; None when the
        response is not plain (parameters, BYTES outputs): the caller encodes it in full."""
        if response.parameters or response.id:
            return None
        layout = []
        for tensor in response.outputs:
            if not ELEMENT_SIZE.get(tensor.datatype):
                return None
            layout.append((tensor.name, tensor.datatype, tuple(tensor.shape)))  # kept: no alias of a response's list
        answer = self._answer
        if (
            answer is not None
            and answer.layout == layout
            and answer.model_version == response.model_version
            and answer.model_name == response.model_name
        ):
            return answer.message
        message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version)
        for name, datatype, shape in layout:
            message.outputs.add(name=name, datatype=datatype, shape=shape)
        serialized = message.SerializeToString()
        self._answer = CachedAnswer(response.model_name, response.model_version, layout, serialized)
        return serialized

    @staticmethod
    def raw_outputs(response: InferResponse) -> list:
        """The response's raw outputs in order (arrays or bytes, no copy where the array allows)."""
        return [tensor_buffer(tensor.datatype, tensor.data) for tensor in response.outputs]


class HeadCache:
    """Decoded heads by their bytes, up to ``limit`` entries."""

    __slots__ = ("limit", "_entries")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[bytes, DecodedHead] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def decode(self, head: bytes, raw: list[memoryview], shm=None) -> tuple[InferRequest, DecodedHead | None]:
        """``codec.decode_request`` for a request's head and raw contents, from the cache when this
        head was seen; also returns the head's entry (None when not plain)."""
        entry = self._entries.get(head)
        if entry is not None:
            request = entry.build(raw)
            if request is not None:
                return request, entry
        message = parse_head(head)
        request = decode_request(message, shm, raw)
        if entry is None:
            entry = DecodedHead.of(message, request, len(raw))
            if entry is not None:
                if len(self._entries) >= self.limit:
                    self._entries.clear()
                self._entries[head] = entry
        return request, entry
