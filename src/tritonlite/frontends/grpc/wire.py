"""ModelInfer on the wire without copying tensor bytes.

protobuf copies a ``bytes`` field when it parses a message, again when Python reads the field,
and again (with ``tobytes`` and append) when a response is built and serialized: four copies of
every tensor on top of gRPC's own. For a 4 MB tensor that is most of a request's time.

Only the two tensor fields are handled by hand; everything else is still parsed and built by
protobuf. ``split_raw`` walks the top-level fields of a ModelInferRequest and keeps every
``raw_input_contents`` entry as a view into the received buffer; the rest (the head) is what
protobuf parses (``split_request``), or what ``head_cache`` recognises.
``join_response`` serializes a ModelInferResponse that has no raw outputs and appends each
``raw_output_contents`` entry (tag, length, the tensor's own buffer) in one ``bytes.join``.
Both produce exactly what protobuf would: fields may come in any order and repeat on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError

from tritonlite.protocol import grpc_service_pb2 as pb

RAW_INPUT_FIELD = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number  # 7
RAW_OUTPUT_FIELD = pb.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number  # 6
LENGTH_DELIMITED = 2
_RAW_OUTPUT_TAG = bytes([RAW_OUTPUT_FIELD << 3 | LENGTH_DELIMITED])


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise DecodeError("truncated or overlong varint")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split_request(data: bytes) -> tuple[pb.ModelInferRequest, list[memoryview]]:
    """The request without its raw contents, and those contents as views into ``data``, in order."""
    head, raw = split_raw(data)
    return pb.ModelInferRequest.FromString(head), raw


def split_raw(data: bytes) -> tuple[bytes, list[memoryview]]:
    """The request's bytes without its raw contents (its head), and those contents as views into
    ``data``, in order. Raises DecodeError where the top-level fields do not parse."""
    view = memoryview(data)
    end = len(view)
    raw: list[memoryview] = []
    kept: list[tuple[int, int]] = []  # byte ranges of every other field, for protobuf
    pos = 0
    while pos < end:
        start = pos
        key = data[pos]  # tags and most lengths are one byte: read inline, the rest by _varint
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(view, pos, end)
        wire = key & 7
        if wire == LENGTH_DELIMITED:
            if pos >= end:
                raise DecodeError("truncated or overlong varint")
            length = data[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(view, pos, end)
            if pos + length > end:
                raise DecodeError("truncated length-delimited field")
            if key >> 3 == RAW_INPUT_FIELD:
                raw.append(view[pos : pos + length])
                pos += length
                continue
            pos += length
        elif wire == 0:
            _, pos = _varint(view, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise DecodeError(f"unexpected wire type {wire}")
        if pos > end:
            raise DecodeError("truncated field")
        if kept and kept[-1][1] == start:
            kept[-1] = (kept[-1][0], pos)
        else:
            kept.append((start, pos))
    if not raw:
        return bytes(data), raw
    head = b"".join(view[a:b] for a, b in kept) if len(kept) != 1 else view[kept[0][0] : kept[0][1]].tobytes()
    return head, raw


def join_response(message: pb.ModelInferResponse, raw: Sequence[Any]) -> bytes:
    """``message`` serialized with ``raw`` (bytes or C-contiguous buffers) as its raw_output_contents."""
    return join_serialized(message.SerializeToString(), raw)


def join_serialized(message: bytes, raw: Sequence[Any]) -> bytes:
    """A serialized ModelInferResponse without raw outputs, with ``raw`` appended as its raw_output_contents."""
    parts: list[Any] = [message]
    for chunk in raw:
        size = len(chunk) if isinstance(chunk, bytes) else memoryview(chunk).nbytes
        parts.append(_RAW_OUTPUT_TAG + encode_varint(size))
        parts.append(chunk)
    return b"".join(parts)
