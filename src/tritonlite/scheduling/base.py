"""What every scheduler offers a model version, in the spirit of Triton core's ``scheduler.h``.

A model version hands each request to its scheduler with ``enqueue`` and gets a future back;
the scheduler decides when and on which instance the request runs. ``create_scheduler``
(``scheduling/factory.py``) picks the scheduler a config asks for.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeAlias

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.streaming import ResponseStream, StreamItem
from tritonlite.core.types import InferRequest, InferResponse

# What a scheduler's future gives: the response, or the backend's error for this one request.
SchedulerResult: TypeAlias = "InferResponse | TritonError"


class Scheduler(ABC):
    """Queues a model version's requests and runs them on its instances."""

    def check(self, request: InferRequest) -> None:  # noqa: B027 (most schedulers take every request)
        """Raise TritonError for a request this scheduler refuses, before anything is queued."""

    @abstractmethod
    def enqueue(self, request: InferRequest) -> asyncio.Future[SchedulerResult]:
        """Queue ``request``; the future gives its result. Cancelling the future withdraws the
        request if it has not run yet. A refusal (full queue, stopping) raises TritonError here or
        comes as the future's exception."""

    async def responses(self, request: InferRequest) -> AsyncIterator[StreamItem]:
        """A decoupled request's responses as ``(response, final)`` items: the backend sends them
        through ``request.stream`` while the request runs like any other."""
        stream = request.stream = ResponseStream()
        future = self.enqueue(request)
        future.add_done_callback(lambda done: _end_stream(stream, done))
        final = False
        try:
            while not final:
                item = await stream.get()
                final = item[1]
                yield item
        finally:
            if not final:  # the reader went away: withdraw the request (its run ends on its own otherwise)
                request.cancel()  # also when execute returned and the model's own threads still send
                stream.close()
                future.cancel()

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking requests and release the instances (after the requests in flight)."""


class TaskScheduler(Scheduler):
    """A scheduler whose requests each run as one coroutine (``run``) in a task of its own."""

    def enqueue(self, request: InferRequest) -> asyncio.Future[SchedulerResult]:
        return asyncio.get_running_loop().create_task(self.run(request))

    @abstractmethod
    def run(self, request: InferRequest) -> Coroutine[Any, Any, SchedulerResult]:
        """Run one request to its result."""


def _end_stream(stream: ResponseStream, done: asyncio.Future) -> None:
    """Close a decoupled request's stream when its run ended without the final flag."""
    if done.cancelled():
        stream.put(TritonError(ErrorKind.CANCELLED, "request cancelled"), True)
        return
    exc = done.exception()
    result = exc if exc is not None else done.result()
    if isinstance(result, TritonError):
        stream.put(result, True)
    elif isinstance(result, BaseException):
        stream.put(TritonError(ErrorKind.INTERNAL, f"{type(result).__name__}: {result}"), True)
