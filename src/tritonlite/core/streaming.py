"""Responses of decoupled models: zero or more per request, the last one flagged final.

A decoupled model sends responses through ``request.stream`` from any thread (its instance
thread, or threads it started); the core reads them on the event loop, in the order sent.
Each item is ``(response, final)``: an ``InferResponse``, a ``TritonError`` (that request's
error, always final) or ``None`` (a final flag sent without a response).
"""

from __future__ import annotations

import asyncio
import threading

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferResponse

StreamItem = tuple["InferResponse | TritonError | None", bool]


class ResponseStream:
    """A thread-safe, ordered channel of one request's responses."""

    __slots__ = ("_loop", "_queue", "_thread", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._thread = threading.get_ident()
        self.closed = False  # a final item was put

    def put(self, response: InferResponse | TritonError | None, final: bool) -> None:
        """Add one response (from any thread); nothing is added after the final one."""
        if self.closed:
            return
        if final:
            self.closed = True
        if threading.get_ident() == self._thread:
            self._queue.put_nowait((response, final))
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (response, final))
        except RuntimeError:  # the loop is closed: the server stopped, nobody reads any more
            pass

    def close(self) -> None:
        """The reader went away: later responses are dropped, not kept for nobody."""
        self.closed = True
        while self.get_nowait() is not None:
            pass

    async def get(self) -> StreamItem:
        return await self._queue.get()

    def get_nowait(self) -> StreamItem | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
