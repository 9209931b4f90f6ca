"""JSON infer bodies too large to handle in one C call: parsed and written in pieces.

orjson holds the GIL for a whole ``loads`` or ``dumps``: a 40 MB body of numbers takes it for
most of a second, and every other connection waits that long even when the work runs in a worker
thread. Most of such a body is the ``"data"`` arrays of its inputs (or outputs), so those are
handled apart, in pieces of ``PIECE`` bytes or elements, each a short C call after which the
event loop can take the GIL back:

- ``load`` cuts each big array of numbers under a ``"data"`` key out of the text, parses the rest
  (small) with orjson, and puts a ``NumberArray`` where the array was; its ``pieces`` parse it.
- ``render_numbers`` writes a big numeric array as JSON piece by piece; ``Splice`` puts text
  made apart (those arrays, BYTES values that are not UTF-8) into a document orjson writes.

Anything unusual (an array that is not plain numbers, nesting with empty lists, a parse error)
raises ``Irregular``, and the caller parses the whole text the ordinary way: the answer, errors
included, is always the ordinary one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

SPLIT = 1 << 20  # JSON text longer than this is loaded by ``load``
PIECE = 1 << 18  # bytes of array text (or elements written) per orjson call
WINDOW = 1 << 20  # bytes scanned per regular-expression call
BIG_ARRAY = 1 << 16  # arrays shorter than this stay in the document orjson parses

_DATA_KEY = re.compile(rb'"data"\s*:\s*\[')
_NOT_NUMERIC = re.compile(rb"[^0-9eE+\-.,\s\[\]]")
# a list right after a list or a number, a number right after a list, a list after "number,"
_RAGGED = re.compile(rb"\]\s*\[|[0-9.]\s*\[|\]\s*[-0-9.]|[0-9.]\s*,\s*\[")
_EMPTY = re.compile(rb",\s*,")
_NUMBER_END = frozenset(bytes([c]) for c in b"0123456789.")


class Irregular(Exception):
    """The text is not the plain kind ``load`` cuts up: parse it whole."""


@dataclass(frozen=True, slots=True)
class NumberArray:
    """The text of a JSON array of numbers, flat or nested, parsed later in pieces."""

    text: bytes  # the whole body
    start: int  # its '['
    end: int  # one past its ']'

    def pieces(self) -> list[bytes]:
        """The array's numbers as comma-separated text pieces, brackets removed (each about
        ``PIECE`` bytes, cut at commas); the element count is the commas plus one per piece.

        Raises ``Irregular`` for shapes whose flattening is not just dropping the brackets:
        empty lists, lists beside numbers in one list, lists or numbers without commas between.
        """
        text, end = self.text, self.end
        pieces = []
        pos = self.start
        while pos < end:
            cut = text.find(b",", min(pos + PIECE, end), end)
            if cut < 0:
                cut = end
            else:  # the cut splits no "number, [": that is looked for inside pieces only
                after = text[cut + 1 : cut + 65].lstrip()[:1]
                if not after or (after == b"[" and text[max(pos, cut - 64) : cut].rstrip()[-1:] in _NUMBER_END):
                    raise Irregular
            raw = text[pos:cut]
            if _RAGGED.search(raw) is not None:
                raise Irregular
            piece = raw.translate(None, b"[]")
            if not piece.strip() or piece.lstrip()[:1] == b"," or piece.rstrip()[-1:] == b"," or _EMPTY.search(piece):
                raise Irregular  # empty lists inside
            pieces.append(piece)
            pos = cut + 1
        return pieces


def count(pieces: list[bytes]) -> int:
    return sum(piece.count(b",") + 1 for piece in pieces)


def numbers(piece: bytes) -> list:
    """The numbers of one piece, as orjson reads them."""
    try:
        values = orjson.loads(b"[" + piece + b"]")
    except orjson.JSONDecodeError:
        raise Irregular from None  # the whole text's parse gives Triton's error and position
    return values


def load(text: bytes | memoryview) -> Any:
    """``orjson.loads(text)``, but each big array of numbers under a ``"data"`` key of an input
    comes out as a ``NumberArray``. Raises ``Irregular`` when the text is not of that plain kind."""
    if type(text) is not bytes:
        text = bytes(text)
    cuts: list[tuple[int, int]] = []
    pos, size = 0, len(text)
    while pos < size:
        stop = min(pos + WINDOW, size)
        found = _DATA_KEY.search(text, pos, stop)
        if found is None:
            pos = max(pos + 1, stop - 64) if stop < size else size  # a key across the edge: next time
            continue
        start = found.end() - 1
        end = _array_end(text, start)
        if end - start >= BIG_ARRAY:
            cuts.append((start, end))
        pos = end
    if not cuts:
        return orjson.loads(text)
    nonce = secrets.token_hex(8)
    parts, previous = [], 0
    for index, (start, end) in enumerate(cuts):
        parts += (text[previous:start], b'"\\u0000', nonce.encode(), str(index).encode(), b'"')
        previous = end
    parts.append(text[previous:])
    try:
        document = orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        raise Irregular from None
    arrays = {f"\0{nonce}{index}": NumberArray(text, start, end) for index, (start, end) in enumerate(cuts)}
    inputs = document.get("inputs") if type(document) is dict else None
    for item in inputs if type(inputs) is list else ():
        data = item.get("data") if type(item) is dict else None
        if type(data) is str and data in arrays:
            item["data"] = arrays.pop(data)
    if arrays:
        raise Irregular  # a cut array under some other "data" key
    return document


def _array_end(text: bytes, start: int) -> int:
    """One past the ']' closing the array of numbers at ``start``; ``start`` + 1 when the array
    holds anything but numbers (it is then left to orjson)."""
    size = len(text)
    pos = start + 1
    while True:
        stop = min(pos + WINDOW, size)
        other = _NOT_NUMERIC.search(text, pos, stop)
        if other is not None:
            stop = other.start()
            break
        if stop == size:
            break
        pos = stop
    depth = 0
    for window in range(start, stop, WINDOW):
        for bracket in _BRACKETS.finditer(text, window, min(window + WINDOW, stop)):
            depth += 1 if bracket.group() == b"[" else -1
            if depth == 0:
                return bracket.end()
    return start + 1


_BRACKETS = re.compile(rb"[\[\]]")


def render_numbers(array: np.ndarray) -> bytes:
    """A flat numeric array as JSON text, written ``PIECE`` elements at a time."""
    flat = array.reshape(-1)
    parts = []
    for offset in range(0, len(flat), PIECE):
        parts.append(orjson.dumps(flat[offset : offset + PIECE], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1])
    return b"[" + b",".join(parts) + b"]"


_ESCAPES = {bytes([c]): f"\\u{c:04x}".encode() for c in range(32)}
_ESCAPES.update({b"\b": b"\\b", b"\t": b"\\t", b"\n": b"\\n", b"\f": b"\\f", b"\r": b"\\r", b'"': b'\\"',
                 b"\\": b"\\\\"})  # fmt: skip
_TO_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')


def render_bytes(values: list[bytes]) -> bytes:
    """BYTES values as a JSON array of strings holding the bytes as they are, as Triton writes them:
    quotes, backslashes and control characters escaped, anything else (not UTF-8 too) unchanged."""
    escape = _TO_ESCAPE.sub
    return b"[" + b",".join(b'"' + escape(lambda m: _ESCAPES[m.group()], v) + b'"' for v in values) + b"]"


@dataclass(slots=True)
class Splice:
    """Text made apart, put into a document orjson writes: ``mark`` gives a string to write in its
    place; ``apply`` swaps each for its text in orjson's output."""

    nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    texts: list[bytes] = field(default_factory=list)

    def mark(self, text: bytes) -> str:
        self.texts.append(text)
        return f"\x01{self.nonce}{len(self.texts) - 1}"

    def apply(self, written: bytes) -> bytes:
        for index, text in enumerate(self.texts):
            written = written.replace(f'"\\u0001{self.nonce}{index}"'.encode(), text, 1)
        return written


def iter_numbers(pieces: list[bytes]) -> Iterator[list]:
    for piece in pieces:
        yield numbers(piece)
