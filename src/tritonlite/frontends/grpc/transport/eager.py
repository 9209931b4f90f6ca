"""Running a coroutine eagerly: its first step now, in the caller, and a task only if it waits.

A unary handler that finds its answer at once (a cheap model run inline) then costs no task and no
turn of the event loop; one that waits goes on in a task as usual, cancellable there. (Python 3.12's
eager tasks do the same; this server runs on 3.10 too.)
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any


@dataclass
class Finished:
    """The outcome of a coroutine that ended in its first step."""

    value: Any = None
    error: BaseException | None = None


def start(coro: Coroutine) -> Finished | asyncio.Task:
    """Run ``coro`` up to its first wait: what it returned or raised, or the task that finishes it."""
    try:
        waiting_on = coro.send(None)
    except StopIteration as stop:
        return Finished(value=stop.value)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a task would hold it
        return Finished(error=exc)
    return asyncio.get_running_loop().create_task(_Resumption(coro, waiting_on))


class _Resumption(collections.abc.Coroutine):
    """The rest of ``coro`` for a task to drive: the task's first step gets what ``coro`` waits on.

    A task cancelled before that first step throws into this object, which passes it on (and, as
    a task would, cancels what ``coro`` waits on), so the handler always sees its cancellation.
    """

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Coroutine, waiting_on: Any) -> None:
        self.coro = coro
        self.waiting_on = waiting_on

    def send(self, value: Any) -> Any:
        waiting_on = self.waiting_on
        if waiting_on is not _HANDED_OVER:
            self.waiting_on = _HANDED_OVER
            return waiting_on
        return self.coro.send(value)

    def throw(self, exc: Any, value: Any = None, traceback: Any = None) -> Any:
        waiting_on = self.waiting_on
        if waiting_on is not _HANDED_OVER:
            self.waiting_on = _HANDED_OVER
            if isinstance(waiting_on, asyncio.Future):
                waiting_on.cancel()
        if value is None and traceback is None:
            return self.coro.throw(exc)
        return self.coro.throw(exc, value, traceback)  # the older three-argument form

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("a resumption is driven by its task, not awaited")


_HANDED_OVER = object()
