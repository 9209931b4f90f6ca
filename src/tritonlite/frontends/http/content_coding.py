"""Content codings of infer bodies: gzip or deflate requests (``Content-Encoding``), and answers
compressed when the client accepts it (``Accept-Encoding``), as Triton does."""

from __future__ import annotations

import gzip
import zlib

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg


def decompress(body: bytes, encoding: bytes) -> bytes:
    """The body a request sent with ``Content-Encoding: encoding``."""
    name = encoding.strip().lower()
    try:
        if name == b"gzip":
            return gzip.decompress(body)
        if name == b"deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise invalid_arg(f"failed to decompress the request body ({name.decode()}): {exc}") from None
    if name in (b"", b"identity"):
        return body
    raise TritonError(ErrorKind.UNSUPPORTED, f"unsupported Content-Encoding '{name.decode()}'")


def compress(body: bytes, accept: bytes) -> tuple[bytes, bytes | None]:
    """``body`` in gzip when ``accept`` names it, else deflate when it names that; and the coding's name."""
    wanted = [part.split(b";")[0].strip().lower() for part in accept.split(b",")]
    if b"gzip" in wanted:
        return gzip.compress(body, compresslevel=1), b"gzip"
    if b"deflate" in wanted:
        return zlib.compress(body, 1), b"deflate"
    return body, None
