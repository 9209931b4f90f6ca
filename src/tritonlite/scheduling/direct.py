"""The default scheduler: each request runs alone on the next idle instance."""

from __future__ import annotations

import time

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.scheduling.base import TaskScheduler
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.statistics.model_stats import ModelStats
from tritonlite.tracing.tracer import stamp_compute


class DirectScheduler(TaskScheduler):
    """N instances serve N requests at once; others wait in arrival order."""

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

    async def run(self, request: InferRequest) -> InferResponse | TritonError:
        runner = await self.pool.take()
        stats = self.stats
        stats.record_queue(time.monotonic_ns() - request.arrival_ns)
        started = time.monotonic_ns()
        try:
            results = await runner.execute([request])
        finally:
            self.pool.give_back(runner)
        if request.trace is not None:
            stamp_compute([request], started, time.monotonic_ns(), runner.last_timings)
        rows = request.inputs[0].shape[0] if self.batched and request.inputs and request.inputs[0].shape else 1
        stats.record_execution(rows, 1, *runner.last_timings)
        return results[0]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()
