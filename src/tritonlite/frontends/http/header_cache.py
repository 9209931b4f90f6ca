"""Infer headers seen before: the JSON part of a binary infer request, decoded once.

A client that sends tensors as binary data sends the same JSON header again and again (names,
datatypes, shapes, sizes); only the bytes after it change. perf_analyzer does, and so does any
client in a loop over same-shaped inputs. The cache keeps what such a header decodes to, keyed by
the model and the header's bytes, and builds the next request from it and the new binary part:
no JSON parsing, no field checks. Once a request built from an entry has passed the model's
validation, later ones sent to the same loaded model skip it too (the outcome depends only on the
header and the model's config, both unchanged).

Only plain headers are kept: binary inputs of fixed-size types, no request id, no parameters but
``binary_data_output``, no shared memory and no JSON data. Anything else is decoded every time.
"""

from __future__ import annotations

import weakref
from typing import Any

from tritonlite.core.datatypes import tensor_from_bytes
from tritonlite.core.types import InferRequest, InferTensor, RequestedOutput
from tritonlite.frontends.http.codec import decode_request

DEFAULT_LIMIT = 512  # entries; the cache starts over when full (a client with ever-new headers)


class DecodedHeader:
    """What one plain JSON header decodes to, without the binary data."""

    __slots__ = ("inputs", "outputs", "binary_default", "binary_size", "validated_for")

    def __init__(
        self,
        inputs: tuple[tuple[str, str, tuple[int, ...], int, int], ...],
        outputs: tuple[tuple[str, int, bool], ...] | None,
        binary_default: bool,
    ) -> None:
        self.inputs = inputs  # (name, datatype, shape, element count, byte size) in request order
        self.outputs = outputs  # (name, class count, binary) or None when no outputs were named
        self.binary_default = binary_default
        self.binary_size = sum(size for *_, size in inputs)
        self.validated_for: weakref.ref | None = None  # the model a request of this header passed

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
            shape = tuple(tensor.shape)
            count = 1
            for dim in shape:
                count *= dim
            inputs.append((tensor.name, tensor.datatype, shape, count, tensor.data.nbytes))
        outputs = None
        if request.outputs is not None:
            outputs = []
            for requested in request.outputs:
                parameters = requested.parameters or {}
                if set(parameters) != {"binary_data"}:
                    return None
                outputs.append((requested.name, requested.class_count, bool(parameters["binary_data"])))
            outputs = tuple(outputs)
        return cls(tuple(inputs), outputs, binary_default)

    def build(self, model_name: str, model_version: str, binary: memoryview) -> InferRequest | None:
        """A request of this header with ``binary`` as its tensor bytes; None if their size differs."""
        if len(binary) != self.binary_size:
            return None  # decoded afresh, for the error
        request = InferRequest(model_name, model_version)
        tensors = request.inputs
        offset = 0
        for name, datatype, shape, count, size in self.inputs:
            end = offset + size
            data = tensor_from_bytes(binary[offset:end], datatype, shape, count)
            tensors.append(InferTensor(name, datatype, list(shape), data))
            offset = end
        if self.outputs is not None:
            outputs = []
            for name, class_count, binary_data in self.outputs:
                requested = RequestedOutput(name, None, class_count)
                requested.parameters = {"binary_data": binary_data}
                outputs.append(requested)
            request.outputs = outputs
        return request

    def validated(self, model: Any) -> bool:
        """Whether a request of this header passed ``model``'s validation before."""
        ref = self.validated_for
        return ref is not None and ref() is model

    def passed(self, model: Any) -> None:
        """Note that a request of this header passed ``model``'s validation."""
        self.validated_for = weakref.ref(model)


class HeaderCache:
    """Decoded plain infer headers by (model, version, header bytes)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str, bytes], DecodedHeader] = {}

    def __len__(self) -> int:
        return len(self._entries)

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
