"""Requests of in-process callers, started on the engine's loop; their answers go to a sink.

A caller thread builds the core request and a ``Ticket`` with its sink, and hands both to
``Dispatcher.start`` with one ``call_soon_threadsafe``. A model that is not decoupled answers
through ``Engine.submit`` (a callback, no task); a decoupled one through a task that pumps
``Engine.infer_stream``. Every item is ``(response | TritonError | None, final)``, the core's
stream item; the final one closes the ticket.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Protocol

from tritonlite.core.errors import DecoupledModelError, ErrorKind, TritonError, internal, unavailable
from tritonlite.core.streaming import StreamItem
from tritonlite.core.types import InferRequest
from tritonlite.engine import Engine
from tritonlite.models.submission import Submission

# the answer of a request withdrawn by its caller (the HTTP frontend's text for the same)
CANCELLED_MESSAGE = "request cancelled"
STOPPED_MESSAGE = "the in-process server stopped before the request was answered"


class ResponseSink(Protocol):
    """Where a request's items go; ``put`` is called on the engine's loop."""

    def put(self, item: StreamItem) -> None: ...


class LoopSink:
    """Items for a consumer on another event loop (``async_infer``), through its asyncio queue."""

    __slots__ = ("loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[StreamItem] = asyncio.Queue()

    def put(self, item: StreamItem) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody reads any more
            pass


class Ticket:
    """One request's place on the loop: its sink, the work answering it, whether it was withdrawn."""

    __slots__ = ("sink", "job", "cancelled")

    def __init__(self, sink: ResponseSink) -> None:
        self.sink = sink
        self.job: Submission | asyncio.Task | None = None
        self.cancelled = False


def cancelled_error() -> TritonError:
    return TritonError(ErrorKind.CANCELLED, CANCELLED_MESSAGE)


class Dispatcher:
    """Starts tickets on the engine's loop and closes the ones left open when the server stops.

    Every method runs on the loop thread.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.open: set[Ticket] = set()
        self.stopped = False

    def start(self, ticket: Ticket, request: InferRequest, decoupled: bool) -> None:
        if ticket.cancelled or self.stopped:
            ticket.sink.put((cancelled_error() if ticket.cancelled else unavailable(STOPPED_MESSAGE), True))
            return
        self.open.add(ticket)
        if not decoupled:
            try:
                submission = self.engine.submit(request)
            except DecoupledModelError:  # reloaded as decoupled since the caller looked it up
                decoupled = True
            except TritonError as exc:
                self._finish(ticket, exc)
                return
            except Exception as exc:  # a bug: answered, not left waiting
                self._finish(ticket, internal(f"{type(exc).__name__}: {exc}"))
                return
            else:
                ticket.job = submission
                submission.on_settled(functools.partial(self._settled, ticket))
                return
        ticket.job = asyncio.get_running_loop().create_task(self._pump(ticket, request))

    def _settled(self, ticket: Ticket, submission: Submission) -> None:
        try:
            outcome = submission.result()
        except TritonError as exc:
            outcome = exc
        except asyncio.CancelledError:
            outcome = cancelled_error()
        except Exception as exc:
            outcome = internal(f"{type(exc).__name__}: {exc}")
        self._finish(ticket, outcome)

    async def _pump(self, ticket: Ticket, request: InferRequest) -> None:
        sink = ticket.sink
        try:
            async for response, final in self.engine.infer_stream(request):
                if final:
                    self._finish(ticket, response)
                    return
                sink.put((response, False))
            self._finish(ticket, None)  # a stream that ended without its final flag
        except TritonError as exc:
            self._finish(ticket, exc)
        except asyncio.CancelledError:
            self._finish(ticket, cancelled_error() if ticket.cancelled else unavailable(STOPPED_MESSAGE))
            raise
        except Exception as exc:
            self._finish(ticket, internal(f"{type(exc).__name__}: {exc}"))

    def _finish(self, ticket: Ticket, outcome: object) -> None:
        if ticket in self.open:
            self.open.discard(ticket)
            ticket.sink.put((outcome, True))  # type: ignore[arg-type]

    def cancel(self, ticket: Ticket) -> None:
        """Withdraw a request: a queued one leaves its queue; a running stream stops being read."""
        ticket.cancelled = True
        job = ticket.job
        if job is not None:
            job.cancel()

    def stop(self) -> None:
        """Answer every open ticket (the engine has stopped): no caller waits for ever."""
        self.stopped = True
        for ticket in list(self.open):
            job = ticket.job
            if isinstance(job, asyncio.Task):
                job.cancel()
            self._finish(ticket, unavailable(STOPPED_MESSAGE))
