"""The default scheduler: each request runs alone on the next idle instance."""

from __future__ import annotations

import asyncio

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.scheduling.instance_runner import InstanceRunner


class DirectScheduler:
    """N instances serve N requests at once; others wait in arrival order."""

    def __init__(self, runners: list[InstanceRunner]) -> None:
        self.runners = runners
        self._idle: asyncio.Queue[InstanceRunner] = asyncio.Queue()
        for runner in runners:
            self._idle.put_nowait(runner)

    async def infer(self, request: InferRequest) -> InferResponse | TritonError:
        runner = await self._idle.get()
        try:
            results = await runner.execute([request])
        finally:
            self._idle.put_nowait(runner)
        return results[0]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()
