"""Infer headers seen before: the JSON part of a binary infer request, decoded once.

A client that sends tensors as binary data sends the same JSON header again and again (names,
datatypes, shapes, sizes); only the bytes after it change. perf_analyzer does, and so does any
client in a loop over same-shaped inputs. The cache keeps what such a header decodes to, keyed by
the model and the header's bytes, and builds the next request from it and the new binary part:
no JSON parsing, no field checks. Requests built from an entry carry it as their
``validation_key``, so a loaded model version validates a header once (the outcome depends only
on the header and the model's config, both unchanged).

The answers to such requests repeat too: when every output goes back as binary data of a
fixed-size type, the answer's JSON header is the same as long as the outputs' names, types and
shapes are. The entry keeps the last one it encoded and reuses it when they match.

Only plain headers are kept: binary inputs of fixed-size types, no request id, no parameters but
``binary_data_output``, no shared memory and no JSON data. Anything else is decoded every time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tritonlite.core.datatypes import tensor_buffer
from tritonlite.core.types import InferRequest, InferResponse, RequestedOutput
from tritonlite.frontends.http.codec import binary_headers, decode_request, encode_response
from tritonlite.frontends.input_layout import InputLayout

DEFAULT_LIMIT = 512  # entries; the cache starts over when full (a client with ever-new headers)


class OutputRequest(NamedTuple):
    """One output a header names."""

    name: str
    class_count: int
    binary: bool


class OutputLayout(NamedTuple):
    """One output of an answer, as its JSON header describes it."""

    name: str
    datatype: str
    shape: list[int]
    size: int  # bytes


class CachedAnswer(NamedTuple):
    """The last answer's JSON header, reused while the outputs keep their layout."""

    model_name: str
    model_version: str
    outputs: list[OutputLayout]
    json_header: bytes
    http_headers: list[tuple[bytes, bytes]]


class DecodedHeader:
    """What one plain JSON header decodes to, without the binary data."""

    __slots__ = ("inputs", "outputs", "binary_default", "binary_size", "_binary", "_answer")

    def __init__(
        self, inputs: tuple[InputLayout, ...], outputs: tuple[OutputRequest, ...] | None, binary_default: bool
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs  # None when the header names no outputs
        self.binary_default = binary_default
        self.binary_size = sum(layout.size for layout in inputs)
        # whether an output goes back as binary data, by name (outputs not named: binary_default)
        self._binary = {output.name: output.binary for output in outputs or ()}
        self._answer: CachedAnswer | None = None

    @classmethod
    def of(cls, header: bytes, request: InferRequest, binary_default: bool) -> DecodedHeader | None:
        """The entry for a header that ``decode_request`` turned into ``request``; None if not plain."""
        if b"shared_memory" in header or b'"data"' in header:
            return None  # the JSON carries data or names regions: decoded every time
        if request.id or request.parameters or request.priority or request.timeout_us:
            return None
        if request.correlation_id or request.flags:
            return None
        inputs = []
        for tensor in request.inputs:
            if tensor.datatype == "BYTES" or tensor.parameters:
                return None
            inputs.append(InputLayout.of(tensor))
        outputs = None
        if request.outputs is not None:
            outputs = []
            for requested in request.outputs:
                parameters = requested.parameters or {}
                if set(parameters) != {"binary_data"}:
                    return None
                outputs.append(OutputRequest(requested.name, requested.class_count, bool(parameters["binary_data"])))
            outputs = tuple(outputs)
        return cls(tuple(inputs), outputs, binary_default)

    def build(self, model_name: str, model_version: str, binary: memoryview) -> InferRequest | None:
        """A request of this header with ``binary`` as its tensor bytes; None if their size differs."""
        if len(binary) != self.binary_size:
            return None  # decoded afresh, for the error
        request = InferRequest(model_name, model_version)
        request.validation_key = self
        tensors = request.inputs
        offset = 0
        for layout in self.inputs:
            end = offset + layout.size
            tensors.append(layout.tensor(binary[offset:end]))
            offset = end
        if self.outputs is not None:
            outputs = []
            for name, class_count, binary_data in self.outputs:
                requested = RequestedOutput(name, None, class_count)
                requested.parameters = {"binary_data": binary_data}
                outputs.append(requested)
            request.outputs = outputs
        return request

    def encode(
        self, response: InferResponse, request: InferRequest
    ) -> tuple[bytes, int | None, list[tuple[bytes, bytes]] | None]:
        """``encode_response`` for a request of this header, with the JSON header of the last answer
        when this one has the same outputs; also the answer's binary HTTP headers (None: JSON)."""
        outputs = response.outputs
        answer = self._answer
        if (
            answer is not None
            and not response.id
            and not response.parameters
            and response.model_name == answer.model_name
            and response.model_version == answer.model_version
            and len(outputs) == len(answer.outputs)
        ):
            header = answer.json_header
            parts = [header]
            for tensor, (name, datatype, shape, size) in zip(outputs, answer.outputs, strict=True):
                if tensor.name != name or tensor.datatype != datatype or tensor.shape != shape:
                    break
                raw = tensor_buffer(datatype, tensor.data)
                if _size(raw) != size:  # e.g. an array of another dtype than the datatype says
                    break
                parts.append(raw)
            else:
                return b"".join(parts), len(header), answer.http_headers
        payload, json_length = encode_response(response, request, self.binary_default)
        headers = None
        if json_length is not None:
            headers = binary_headers(json_length)
            if self._all_binary(response):
                layouts = [
                    OutputLayout(t.name, t.datatype, type(t.shape)(t.shape), _size(tensor_buffer(t.datatype, t.data)))
                    for t in outputs
                ]
                self._answer = CachedAnswer(
                    response.model_name, response.model_version, layouts, payload[:json_length], headers
                )
        return payload, json_length, headers

    def _all_binary(self, response: InferResponse) -> bool:
        """Whether every output of ``response`` went out as binary data of a fixed-size type."""
        if response.id or response.parameters or not response.outputs:
            return False
        binary, default = self._binary, self.binary_default
        for tensor in response.outputs:
            if tensor.datatype == "BYTES" or not binary.get(tensor.name, default):
                return False
        return True


def _size(raw: Any) -> int:
    """Bytes in what ``tensor_buffer`` gave: an array, or bytes for dtypes without a buffer."""
    return len(raw) if isinstance(raw, bytes) else raw.nbytes


class HeaderCache:
    """Decoded plain infer headers by (model, version, header bytes)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str, bytes], DecodedHeader] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, model_name: str, model_version: str, header: bytes) -> DecodedHeader | None:
        """The entry of a JSON header seen before, if any."""
        return self._entries.get((model_name, model_version, header))

    def decode(
        self, model_name: str, model_version: str, body: bytes, header_length: int, shm=None
    ) -> tuple[InferRequest, bool, DecodedHeader | None]:
        """``decode_request`` for a body whose JSON header is ``header_length`` bytes long, from the
        cache when this header was seen; also returns the header's entry (None when not plain)."""
        header = body[:header_length]
        if type(header) is not bytes:
            header = bytes(header)
        key = (model_name, model_version, header)
        entry = self._entries.get(key)
        if entry is not None:
            request = entry.build(model_name, model_version, memoryview(body)[header_length:])
            if request is not None:
                return request, entry.binary_default, entry
        request, binary_default = decode_request(model_name, model_version, body, header_length, shm)
        if entry is None and 0 < header_length:
            entry = DecodedHeader.of(header, request, binary_default)
            if entry is not None:
                if len(self._entries) >= self.limit:
                    self._entries.clear()
                self._entries[key] = entry
        return request, binary_default, entry
