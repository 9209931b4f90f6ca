"""A backend instance bound to its own thread: created there, executed there, finalized there.

Cheap models skip the thread hop: a thread hop costs tens of microseconds, more than a small
python model's whole execute. The runner times each execute; once a model has shown it is
fast (average under ``INLINE_MAX_SECONDS``), later executes run directly on the event loop,
and a slow one sends it back to its thread. ``mode`` can force either way.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from tritonlite.backends import BackendInstance, InstanceSpec, create_instance
from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse

# An execute this fast (on average) may run on the event loop without hurting other requests.
INLINE_MAX_SECONDS = 0.0002
# One inline execute slower than this sends the model back to its thread.
INLINE_REVERT_SECONDS = 0.002
# How many executes to watch on the thread before deciding.
INLINE_WARMUP_CALLS = 32

INLINE_MODES = ("auto", "never", "always")


class InstanceThread:
    """One thread that runs calls handed to it, one at a time, and answers on the event loop.

    Leaner than ``run_in_executor`` on a one-worker ``ThreadPoolExecutor`` (no concurrent future
    chained to an asyncio one, no pool bookkeeping): the call's result is posted back with one
    ``call_soon_threadsafe`` as the thread's last step before it waits again.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first call

    def _serve(self) -> None:
        calls = self._calls
        while True:
            job = calls.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                outcome, failed = fn(*args), False
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome, failed = exc, True
            del job, fn, args
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, failed)
            except RuntimeError:  # the loop closed while the call ran: nobody waits for it
                pass
            del future, outcome

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """``fn(*args)`` on this thread; the returned future completes on the calling loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        self._calls.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        """The thread ends after the calls already handed to it."""
        if self._thread is not None:
            self._calls.put(None)


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if future.cancelled():
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class InstanceRunner:
    """Runs one model instance so that model code never stalls the event loop for long."""

    def __init__(self, name: str, inline: str = "auto") -> None:
        if inline not in INLINE_MODES:
            raise ValueError(f"inline mode must be one of {INLINE_MODES}, got {inline!r}")
        self.name = name
        self.thread = InstanceThread(f"instance-{name}")
        self.instance: BackendInstance | None = None
        self.mode = inline
        self.inline = inline == "always"
        self._calls = 0
        self._average = 0.0
        # (input, infer, output) nanoseconds of the last execute, for statistics
        self.last_timings: tuple[int, int, int] = (0, 0, 0)

    async def start(self, backend: str, spec: InstanceSpec) -> None:
        self.instance = await self.thread.run(create_instance, backend, spec)
        if not self.instance.may_run_inline:
            self.mode, self.inline = "never", False

    def _timed(self, requests: list[InferRequest]) -> tuple[list[InferResponse | TritonError], float]:
        start = time.perf_counter()
        results = self.instance.execute(requests)
        seconds = time.perf_counter() - start
        timings = self.instance.timings
        self.last_timings = timings if any(timings) else (0, int(seconds * 1e9), 0)
        return results, seconds

    def _observe(self, seconds: float) -> None:
        self._calls += 1
        self._average += (seconds - self._average) / min(self._calls, INLINE_WARMUP_CALLS)
        if self.mode != "auto":
            return
        if self.inline:
            if seconds > INLINE_REVERT_SECONDS or self._average > INLINE_MAX_SECONDS:
                self.inline = False
                self._calls = 0
        elif self._calls >= INLINE_WARMUP_CALLS and self._average < INLINE_MAX_SECONDS:
            self.inline = True

    async def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        if self.inline:
            return self.execute_now(requests)
        assert self.instance is not None
        results, seconds = await self.thread.run(self._timed, requests)
        self._observe(seconds)
        return results

    def execute_now(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        """Execute on the event loop, now (for a runner that runs ``inline``)."""
        assert self.instance is not None
        results, seconds = self._timed(requests)
        self._observe(seconds)
        return results

    async def stop(self) -> None:
        if self.instance is not None:
            await self.thread.run(self.instance.finalize)
            self.instance = None
        self.thread.close()
