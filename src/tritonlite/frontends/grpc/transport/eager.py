"""Running a coroutine eagerly: its first step now, in the caller, and a task only if it waits.

A unary handler that finds its answer at once (a cheap model run inline) then costs no task and no
turn of the event loop; one that waits goes on in a task as usual, cancellable there. (Python 3.12's
eager tasks do the same; this server runs on 3.10 too.)
"""

from __future__ import annotations

import asyncio
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
    return asyncio.get_running_loop().create_task(_resume(coro, waiting_on))


async def _resume(coro: Coroutine, waiting_on: Any) -> Any:
    return await _Continuation(coro, waiting_on)


class _Continuation:
    """Awaiting it hands the task what ``coro`` waits on, then drives ``coro`` to its end."""

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Coroutine, waiting_on: Any) -> None:
        self.coro = coro
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self.coro, self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # the task's cancellation (or a throw) goes into the coroutine
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value
