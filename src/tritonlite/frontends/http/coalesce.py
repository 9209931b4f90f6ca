"""One socket write per HTTP response instead of two.

uvicorn's httptools protocol writes the status line and headers when the app sends
``http.response.start`` and the body on ``http.response.body``: two ``send`` system calls for
every small inference response, which is most of the server's CPU time at high concurrency.
This module swaps in a request/response cycle that holds the header bytes back and writes them
together with the first body chunk. It relies on uvicorn's module layout; when that is not
found, nothing is patched and uvicorn behaves as usual.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class _Collect:
    """Stands in for the transport while uvicorn formats a message; keeps the bytes."""

    __slots__ = ("chunks", "closed", "real")

    def __init__(self, real) -> None:
        self.real = real
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True

    def __getattr__(self, name):
        return getattr(self.real, name)


def install() -> bool:
    """Patch uvicorn's httptools protocol; returns whether it was patched."""
    import os

    if os.environ.get("TRITONLITE_HTTP_COALESCE", "1") == "0":
        return False
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:
        return False
    base = getattr(httptools_impl, "RequestResponseCycle", None)
    if base is None or getattr(base, "_tritonlite_coalescing", False) or not hasattr(base, "send"):
        return False

    class CoalescingCycle(base):  # type: ignore[misc, valid-type]
        _tritonlite_coalescing = True

        async def send(self, message) -> None:
            kind = message.get("type")
            if kind == "http.response.start" and not self.response_started:
                real = self.transport
                self.transport = _Collect(real)
                try:
                    await super().send(message)
                finally:
                    self._held = self.transport.chunks
                    self.transport = real
                return
            held = getattr(self, "_held", None)
            if kind == "http.response.body" and held:
                self._held = None
                real = self.transport
                collect = _Collect(real)
                self.transport = collect
                try:
                    await super().send(message)
                finally:
                    self.transport = real
                if sum(len(chunk) for chunk in collect.chunks) <= 65536:
                    real.write(b"".join(held + collect.chunks))
                else:  # a big body is not worth copying to save one system call
                    real.write(b"".join(held))
                    for chunk in collect.chunks:
                        real.write(chunk)
                if collect.closed:
                    real.close()
                return
            await super().send(message)

    httptools_impl.RequestResponseCycle = CoalescingCycle
    log.debug("HTTP responses are written in one piece")
    return True
