"""A backend instance bound to its own thread: created there, executed there, finalized there.

Cheap models skip the thread hop: a thread hop costs tens of microseconds, more than a small
python model's whole execute. The runner times each execute; once a model has shown it is
fast (average under ``INLINE_MAX_SECONDS``), later executes run directly on the event loop,
and a slow one sends it back to its thread. ``mode`` can force either way.

Instances heal: an execute past the runner's time limit (``execute_timeout_s``) fails with
UNAVAILABLE and the instance is replaced (a process instance is killed, a thread instance's stuck
thread abandoned, never joined); an instance that dies on its own (a stub process that exited) is
replaced at once, sooner after a quiet spell than after a recent restart (backoff). Meanwhile the
runner is not ``healthy`` and its executes wait for the new instance. ``abandon`` gives up on it
for good (the server stops and the instance did not finish in time).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tritonlite.backends import BackendInstance, InstanceSpec, create_instance
from tritonlite.core.errors import TritonError, unavailable
from tritonlite.core.types import InferRequest, InferResponse

log = logging.getLogger(__name__)

# An execute this fast (on average) may run on the event loop without hurting other requests.
INLINE_MAX_SECONDS = 0.0002
# One inline execute slower than this sends the model back to its thread.
INLINE_REVERT_SECONDS = 0.002
# How many executes to watch on the thread before deciding.
INLINE_WARMUP_CALLS = 32

INLINE_MODES = ("auto", "never", "always")

# Restart backoff: the first restart after a quiet spell is immediate; each one within
# RESTART_QUIET_S of the previous waits twice as long as the last, from RESTART_BACKOFF_MIN_S up to
# RESTART_BACKOFF_MAX_S (an instance that dies as it starts is not restarted in a tight loop).
RESTART_BACKOFF_MIN_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
RESTART_QUIET_S = 60.0


class InstanceAbandoned(Exception):
    """The runner gave up on an execute (watchdog, shutdown): its requests get ``error``."""

    def __init__(self, error: TritonError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _Execution:
    """One execute handed to the instance thread; ``finished`` is set there when the model returns."""

    requests: list[InferRequest]
    instance: BackendInstance
    finished: bool = False


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

    def abandon(self, exc: BaseException) -> None:
        """Fail the calls still queued with ``exc`` and let the thread end if it ever returns: it
        is stuck in model code, and nothing joins it (it is a daemon thread)."""
        while True:
            try:
                job = self._calls.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _settle(job[1], exc, True)
        self._calls.put(None)


async def _withdrawn_while_running(requests: list[InferRequest], thread: InstanceThread) -> None:
    """The awaiting task was cancelled mid-execute: the model is told (``is_cancelled()``) and the
    instance stays taken until its execute returns (a call queued behind it marks that), whatever
    more cancels come meanwhile."""
    for request in requests:
        request.cancel()
    drained = thread.run(_nothing)
    while not drained.done():
        try:
            await asyncio.shield(drained)
        except asyncio.CancelledError:
            continue
        except InstanceAbandoned:  # the thread was given up on: nothing more runs there
            return


def _nothing() -> None:
    return None


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if future.done():  # cancelled, or given up on by the runner (watchdog, shutdown)
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class InstanceRunner:
    """Runs one model instance so that model code never stalls the event loop for long.

    ``execute_timeout_s`` (0: none) is the watchdog's limit on one execute; ``on_restart`` is
    called on the loop each time a new instance replaced a hung or dead one.
    """

    def __init__(
        self,
        name: str,
        inline: str = "auto",
        *,
        model_name: str = "",
        execute_timeout_s: float = 0.0,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        if inline not in INLINE_MODES:
            raise ValueError(f"inline mode must be one of {INLINE_MODES}, got {inline!r}")
        self.name = name
        self.model_name = model_name or name
        self.thread = InstanceThread(f"instance-{name}")
        self.instance: BackendInstance | None = None
        # a watched execute stays on its thread: one that hangs on the event loop cannot be timed out
        self.mode = "never" if execute_timeout_s > 0 else inline
        self.inline = self.mode == "always"
        self.execute_timeout_s = execute_timeout_s
        self.on_restart = on_restart
        self.healthy = True
        self.restarts = 0
        self._calls = 0
        self._average = 0.0
        # (input, infer, output) nanoseconds of the last execute, for statistics
        self.last_timings: tuple[int, int, int] = (0, 0, 0)
        self._created: tuple[str, InstanceSpec] | None = None  # (backend, spec), to create it again
        self._running: tuple[_Execution, asyncio.Future] | None = None  # the execute on the thread
        self._healing: asyncio.Task | None = None
        self._attempt: asyncio.Future | None = None  # the heal attempt in progress: True when it worked
        self._failed_attempts = 0  # since the last instance that started
        self._last_restart = float("-inf")
        self._backoff = 0.0
        self._closed: TritonError | None = None  # abandoned: every execute fails with this
        self._stopping = False

    async def start(self, backend: str, spec: InstanceSpec) -> None:
        self._created = (backend, spec)
        self.instance = await self.thread.run(create_instance, backend, spec)
        self._watch(self.instance)
        if not self.instance.may_run_inline:
            self.mode, self.inline = "never", False

    def _watch(self, instance: BackendInstance) -> None:
        instance.watch(asyncio.get_running_loop(), functools.partial(self._died, instance))

    def _timed(
        self, requests: list[InferRequest], instance: BackendInstance
    ) -> tuple[list[InferResponse | TritonError], float, tuple[int, int, int]]:
        start = time.perf_counter()
        results = instance.execute(requests)
        seconds = time.perf_counter() - start
        timings = instance.timings
        return results, seconds, timings if any(timings) else (0, int(seconds * 1e9), 0)

    def _run_on_thread(self, call: _Execution) -> tuple[list[InferResponse | TritonError], float, tuple[int, int, int]]:
        try:
            return self._timed(call.requests, call.instance)
        finally:
            call.finished = True

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
        if not self.healthy:
            error = await self._healed()
            if error is not None:
                return [error] * len(requests)
        assert self.instance is not None
        call = _Execution(requests, self.instance)
        thread = self.thread
        future = thread.run(self._run_on_thread, call)
        self._running = (call, future)
        timer = None
        if self.execute_timeout_s > 0:
            timer = asyncio.get_running_loop().call_later(self.execute_timeout_s, self._expired, call, future)
        try:
            results, seconds, self.last_timings = await future
        except InstanceAbandoned as exc:
            return [exc.error] * len(requests)
        except asyncio.CancelledError:
            await _withdrawn_while_running(requests, thread)
            raise
        finally:
            if timer is not None and call.finished:  # a withdrawn execute still running stays watched
                timer.cancel()
        self._observe(seconds)
        return results

    def execute_now(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        """Execute on the event loop, now (for a runner that runs ``inline``)."""
        assert self.instance is not None
        results, seconds, self.last_timings = self._timed(requests, self.instance)
        self._observe(seconds)
        return results

    # -- healing ----------------------------------------------------------------------------------

    def _expired(self, call: _Execution, future: asyncio.Future) -> None:
        """The watchdog: the execute did not return within the limit."""
        if call.finished or self._closed is not None or call.instance is not self.instance:
            return
        limit = f"{self.execute_timeout_s:g} s"
        error = unavailable(
            f"model '{self.model_name}' did not finish executing the request(s) within its execute "
            f"time limit of {limit}; instance '{self.name}' is being restarted"
        )
        log.error(
            "instance '%s' of model '%s' exceeded its execute time limit of %s", self.name, self.model_name, limit
        )
        if not future.done():
            future.set_exception(InstanceAbandoned(error))
        self._replace(f"execute exceeded {limit}")

    def _died(self, instance: BackendInstance, reason: str) -> None:
        """The instance died on its own (called on the loop)."""
        if instance is not self.instance or self._closed is not None or self._stopping:
            return
        log.error("instance '%s' of model '%s' died: %s", self.name, self.model_name, reason)
        self._replace(reason)

    def _replace(self, reason: str) -> None:
        """Give up on the current instance and start a new one in the background."""
        self.healthy = False
        old, self.instance = self.instance, None
        if old is not None and not old.kill():
            # stuck in model code on its thread: abandon the thread (daemon, never joined), use a new one
            self.thread.abandon(InstanceAbandoned(unavailable(f"instance '{self.name}' is being restarted")))
            self.thread = InstanceThread(self.thread.name)
            old = None
        loop = asyncio.get_running_loop()
        self._attempt = loop.create_future()  # now: an execute that comes before the task runs waits for it
        self._healing = loop.create_task(self._heal(old, reason))

    async def _heal(self, old: BackendInstance | None, reason: str) -> None:
        loop = asyncio.get_running_loop()
        if old is not None:  # a killed process instance: reap it (it is dead, nothing to finalize)
            try:
                await self.thread.run(old.finalize)
            except Exception:
                log.exception("releasing the dead instance '%s' failed", self.name)
        now = time.monotonic()
        self._backoff = (
            0.0 if now - self._last_restart > RESTART_QUIET_S
            else min(max(self._backoff * 2, RESTART_BACKOFF_MIN_S), RESTART_BACKOFF_MAX_S)
        )  # fmt: skip
        assert self._created is not None
        while True:
            if self._attempt is None or self._attempt.done():
                self._attempt = loop.create_future()
            if self._backoff:
                await asyncio.sleep(self._backoff)
            try:
                instance = await self.thread.run(create_instance, *self._created)
            except Exception as exc:
                message = exc.message if isinstance(exc, TritonError) else f"{type(exc).__name__}: {exc}"
                self._backoff = min(max(self._backoff * 2, RESTART_BACKOFF_MIN_S), RESTART_BACKOFF_MAX_S)
                log.error(
                    "restarting instance '%s' of model '%s' failed: %s; next try in %g s",
                    self.name, self.model_name, message, self._backoff,
                )  # fmt: skip
                self._failed_attempts += 1
                self._attempt.set_result(False)
                continue
            break
        self._failed_attempts = 0
        self.instance = instance
        self._watch(instance)
        self.healthy = True
        self.restarts += 1
        self._last_restart = time.monotonic()
        log.warning("instance '%s' of model '%s' restarted (%s)", self.name, self.model_name, reason)
        if self.on_restart is not None:
            self.on_restart()
        self._attempt.set_result(True)
        self._healing = None

    async def _healed(self) -> TritonError | None:
        """Wait for the instance being restarted; the error to answer when there is none."""
        # the first try is awaited; after a failed one, requests fail at once rather than wait out the backoff
        if self._closed is None and self._attempt is not None and not self._failed_attempts:
            if not self._attempt.done():
                await asyncio.shield(self._attempt)
            if self.healthy:
                return None
        if self._closed is not None:
            return self._closed
        return unavailable(f"instance '{self.name}' of model '{self.model_name}' is being restarted")

    # -- ending -----------------------------------------------------------------------------------

    def abandon(self, error: TritonError) -> None:
        """Give up on this instance now, for good: the execute in flight and every later one fail
        with ``error``, a process instance is killed, a thread instance's thread left behind."""
        if self._closed is not None:
            return
        self._closed = error
        self.healthy, self.inline, self.mode = False, False, "never"
        if self._healing is not None:
            self._healing.cancel()
        if self._attempt is not None and not self._attempt.done():
            self._attempt.set_result(False)
        if self._running is not None:
            call, future = self._running
            if not call.finished and not future.done():
                future.set_exception(InstanceAbandoned(error))
        instance, self.instance = self.instance, None
        if instance is not None:
            instance.kill()
        self.thread.abandon(InstanceAbandoned(error))

    @property
    def busy(self) -> bool:
        """Whether an execute is running on the instance thread now."""
        return self._running is not None and not self._running[0].finished

    async def stop(self) -> None:
        self._stopping = True
        if self._healing is not None:
            self._healing.cancel()
        if self._attempt is not None and not self._attempt.done():  # executes waiting for it fail now
            self._attempt.set_result(False)
        if self.instance is not None and self._closed is None:
            await self.thread.run(self.instance.finalize)
            self.instance = None
        self.thread.close()
