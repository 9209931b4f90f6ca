"""The engine's event loop on a thread of its own, for callers that are not on it.

The engine is asyncio code bound to one loop; an in-process server runs that loop in a
background thread and hands work over with ``run_coroutine_threadsafe`` / ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tritonlite.inprocess.errors import InternalError

T = TypeVar("T")

_numbers = itertools.count(1)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional: the server's loop where it is installed
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """A started event loop on a daemon thread, until ``close``."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._serve, name=f"tritonlite-inprocess-{next(_numbers)}", daemon=True)
        started = threading.Event()
        self.loop.call_soon(started.set)
        self._thread.start()
        started.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; its exception is raised here.

        Ctrl-C while waiting cancels the coroutine and raises KeyboardInterrupt here.
        """
        if self.on_loop_thread():
            coroutine.close()
            # waiting here would block the very loop that has to answer
            raise InternalError("the in-process server's blocking API was called from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        except concurrent.futures.CancelledError:
            raise InternalError("the call was cancelled: the in-process server stopped") from None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the loop thread (engine state is the loop's), its answer or error here."""

        async def call() -> T:
            return fn(*args)

        return self.run(call())

    def close(self) -> None:
        """Cancel what is left on the loop, stop it, join the thread, close the loop."""
        if not self._thread.is_alive():
            return

        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
