"""Responses of decoupled models: zero or more per request, the last one flagged final.

A decoupled model sends responses through ``request.stream`` from any thread (its instance
thread, or threads it started); the core reads them on the event loop, in the order sent.
Each item is ``(response, final)``: an ``InferResponse``, a ``TritonError`` (that request's
error, always final) or ``None`` (a final flag sent without a response).

The channel holds at most ``BUFFERED_RESPONSES`` unread responses: a model thread that sends more
waits until the reader takes one (or goes away), so a slow client slows the model instead of
growing the server's memory. Sends on the event loop's own thread never wait (nothing could read).
"""

from __future__ import annotations

import asyncio
import threading

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferResponse

StreamItem = tuple["InferResponse | TritonError | None", bool]


BUFFERED_RESPONSES = 64


class ResponseStream:
    """A thread-safe, ordered, bounded channel of one request's responses."""

    __slots__ = ("_loop", "_queue", "_thread", "_room", "_unread", "limit", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, limit: int = BUFFERED_RESPONSES) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._thread = threading.get_ident()
        self._room = threading.Condition()
        self._unread = 0  # put and not yet taken by the reader
        self.limit = limit
        self.closed = False  # a final item was put, or the reader went away

    def put(self, response: InferResponse | TritonError | None, final: bool) -> None:
        """Add one response (from any thread; another thread waits while ``limit`` are unread);
        nothing is added after the final one or once the reader went away."""
        on_loop = threading.get_ident() == self._thread
        with self._room:
            if not on_loop:
                while self._unread >= self.limit and not self.closed:
                    self._room.wait()
            if self.closed:
                return
            if final:
                self.closed = True
            self._unread += 1
        if on_loop:
            self._queue.put_nowait((response, final))
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (response, final))
        except RuntimeError:  # the loop is closed: the server stopped, nobody reads any more
            pass

    def close(self) -> None:
        """The reader went away: later responses are dropped, not kept for nobody, and a sender
        waiting for room goes on."""
        with self._room:
            self.closed = True
            self._room.notify_all()
        while self.get_nowait() is not None:
            pass

    def _taken(self) -> None:
        with self._room:
            self._unread -= 1
            self._room.notify()

    async def get(self) -> StreamItem:
        item = await self._queue.get()
        self._taken()
        return item

    def get_nowait(self) -> StreamItem | None:
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self._taken()
        return item
