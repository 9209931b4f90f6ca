"""The default scheduler: each request runs alone on the next idle instance."""

from __future__ import annotations

import asyncio
import time

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.scheduling.base import Scheduler, SchedulerResult
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.statistics.model_stats import ModelStats
from tritonlite.tracing.tracer import stamp_compute


class DirectScheduler(Scheduler):
    """N instances serve N requests at once; others wait in arrival order.

    A request that finds an idle instance of a model that runs inline (a cheap one) runs at once,
    within ``enqueue``, with no task; the others wait for an instance in a task of their own.
    """

    def __init__(
        self,
        runners: list[InstanceRunner],
        stats: ModelStats | None = None,
        batched: bool = False,
        pool: InstancePool | None = None,
    ) -> None:
        self.runners = runners
        self.stats = stats if stats is not None else ModelStats()
        self.batched = batched
        self.pool = pool if pool is not None else InstancePool(runners)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop requests come on

    def enqueue(self, request: InferRequest) -> asyncio.Future[SchedulerResult]:
        loop = self._loop
        if loop is None:  # asked once: get_running_loop makes a getpid() system call each time
            loop = self._loop = asyncio.get_running_loop()
        runner = self.pool.take_idle()
        if runner is None:
            return loop.create_task(self._wait_and_run(request))
        if not runner.inline:
            return loop.create_task(self._run(runner, request))
        future = loop.create_future()
        started = self._started(request)
        try:
            results = runner.execute_now([request])
        except Exception as exc:  # as the task would end: the awaiting side gets the exception
            future.set_exception(exc)
            return future
        finally:
            self.pool.give_back(runner)
        future.set_result(self._ran(request, runner, started, results))
        return future

    async def _wait_and_run(self, request: InferRequest) -> InferResponse | TritonError:
        return await self._run(await self.pool.take(), request)

    async def _run(self, runner: InstanceRunner, request: InferRequest) -> InferResponse | TritonError:
        started = self._started(request)
        try:
            results = await runner.execute([request])
        except asyncio.CancelledError:  # withdrawn while it ran (the run has ended): it counts as executed
            self._ran(request, runner, started, [None])
            raise
        finally:
            self.pool.give_back(runner)
        return self._ran(request, runner, started, results)

    def _started(self, request: InferRequest) -> int:
        """The request leaves the queue: its queue time is recorded; returns the start of its run."""
        started = time.monotonic_ns()
        self.stats.record_queue(started - request.arrival_ns)
        return started

    def _ran(
        self, request: InferRequest, runner: InstanceRunner, started: int, results: list[InferResponse | TritonError]
    ) -> InferResponse | TritonError:
        if request.trace is not None:
            stamp_compute([request], started, time.monotonic_ns(), runner.last_timings)
        rows = request.inputs[0].shape[0] if self.batched and request.inputs and request.inputs[0].shape else 1
        self.stats.record_execution(rows, 1, *runner.last_timings)
        return results[0]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()
