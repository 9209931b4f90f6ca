"""frontends.http.content_coding: request bodies inflated in capped steps."""

from __future__ import annotations

import gzip
import zlib

import pytest

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg
from tritonlite.frontends.http.content_coding import STEP, Inflation


def too_large() -> TritonError:
    return invalid_arg("too large")


def inflate(body: bytes, coding: bytes, limit: int = 1 << 30) -> bytes:
    inflation = Inflation(body, coding, limit, too_large)
    assert inflation.step()
    return inflation.result()


def test_gzip_deflate_and_identity():
    data = b"tensor bytes " * 1000
    assert inflate(gzip.compress(data), b"gzip") == data
    assert inflate(zlib.compress(data), b" Deflate ") == data
    assert inflate(data, b"identity") == data
    assert inflate(gzip.compress(data[:5]) + gzip.compress(data[5:]), b"gzip") == data  # two members


def test_the_output_is_capped_at_the_limit():
    data = bytes(10 * STEP)
    assert len(inflate(gzip.compress(data), b"gzip", limit=len(data))) == len(data)
    with pytest.raises(TritonError, match="too large"):
        inflate(gzip.compress(data), b"gzip", limit=len(data) - 1)


def test_steps_stop_at_their_budget():
    data = bytes(5 * STEP)
    inflation = Inflation(zlib.compress(data), b"deflate", 1 << 30, too_large)
    assert not inflation.step(STEP)
    assert inflation.size < len(data)
    assert inflation.step()
    assert inflation.result() == data


def test_broken_and_unknown_codings():
    with pytest.raises(TritonError, match="failed to decompress the request body \\(gzip\\)"):
        inflate(b"not gzip", b"gzip")
    with pytest.raises(TritonError, match="end-of-stream marker"):
        inflate(gzip.compress(b"x" * 1000)[:-12], b"gzip")
    with pytest.raises(TritonError) as info:
        Inflation(b"", b"br", 10, too_large)
    assert (info.value.kind, info.value.message) == (ErrorKind.UNSUPPORTED, "Unsupported compression type")
