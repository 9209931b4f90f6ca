"""Server-sent events that stop, and close their source, as soon as the client goes away.

Starlette's StreamingResponse watches for the disconnect only under servers of ASGI spec below 2.4
(uvicorn says 2.3 today); from 2.4 on it notices a lost client when a send fails, which uvicorn
never reports, and it leaves its iterator to the garbage collector either way. Here the disconnect
always cancels the stream and the iterator is always closed (``aclose``), which closes the core's
response stream behind it, so the model's request is cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DONE = b"data: [DONE]\n\n"


def event(document: Any) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


class EventStream(Response):
    """``text/event-stream`` of the byte chunks ``events`` gives."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self._stream(send))
        watching = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((streaming, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                task.cancel()
            for task in (streaming, watching):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.events.aclose()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
