"""Content codings of infer bodies: gzip or deflate requests (``Content-Encoding``), and answers
compressed when the client accepts it (``Accept-Encoding``), as Triton does.

A request body is inflated in steps of bounded output (``Inflation``), never past the largest
body the server takes: a small compressed body that inflates to gigabytes is refused as soon as
its output crosses ``--http-max-input-size``, having held no more than that.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg

STEP = 1 << 20  # bytes of output per decompress call: the unit of work between checks

_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


class Inflation:
    """One request body being inflated, in steps, up to ``limit`` bytes of output.

    ``too_large`` makes the error raised when the output would pass ``limit``.
    """

    __slots__ = ("name", "limit", "too_large", "size", "_wbits", "_inflater", "_pending", "_parts", "done")

    def __init__(self, body: bytes, encoding: bytes, limit: int, too_large: Callable[[], TritonError]) -> None:
        name = encoding.strip().lower()
        self.name = name
        self.limit = limit
        self.too_large = too_large
        self.size = 0  # output so far
        self._parts: list[bytes] = []
        if name in (b"", b"identity"):
            self._wbits = 0
            self._inflater = None
            self._pending = b""
            self._parts.append(body)
            self.size = len(body)
            self.done = True
            return
        wbits = _WBITS.get(name)
        if wbits is None:
            raise TritonError(ErrorKind.UNSUPPORTED, "Unsupported compression type")  # Triton 2.51's text
        self._wbits = wbits
        self._inflater = zlib.decompressobj(wbits)
        self._pending = body  # compressed input not yet fed
        self.done = False

    def step(self, budget: int | None = None) -> bool:
        """Inflate up to ``budget`` more bytes of output (None: to the end); True once complete."""
        try:
            return self._step(budget)
        except zlib.error as exc:
            raise invalid_arg(f"failed to decompress the request body ({self.name.decode()}): {exc}") from None

    def _step(self, budget: int | None) -> bool:
        inflater = self._inflater
        produced = 0
        while not self.done:
            if budget is not None and produced >= budget:
                return False
            room = self.limit + 1 - self.size  # one byte past the limit is enough to know
            chunk = inflater.decompress(self._pending, min(STEP, room))
            self._pending = inflater.unconsumed_tail
            if chunk:
                self.size += len(chunk)
                produced += len(chunk)
                if self.size > self.limit:
                    self._parts.clear()
                    raise self.too_large()
                self._parts.append(chunk)
            if inflater.eof:
                rest = inflater.unused_data
                if rest and self._wbits != zlib.MAX_WBITS:  # gzip: another member follows
                    inflater = self._inflater = zlib.decompressobj(self._wbits)
                    self._pending = rest
                    continue
                self.done = True
            elif not chunk and not self._pending:
                raise invalid_arg(
                    f"failed to decompress the request body ({self.name.decode()}): "
                    "Compressed file ended before the end-of-stream marker was reached"
                )
        return True

    def result(self) -> bytes:
        """The inflated body (once ``step`` has returned True)."""
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


def compress(body: bytes, accept: bytes) -> tuple[bytes, bytes | None]:
    """``body`` in gzip when ``accept`` names it, else deflate when it names that; and the coding's name."""
    wanted = [part.split(b";")[0].strip().lower() for part in accept.split(b",")]
    if b"gzip" in wanted:
        return gzip.compress(body, compresslevel=1), b"gzip"
    if b"deflate" in wanted:
        return zlib.compress(body, 1), b"deflate"
    return body, None
