"""A backend instance bound to its own thread: created there, executed there, finalized there."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tritonlite.backends import BackendInstance, InstanceSpec, create_instance
from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse


class InstanceRunner:
    """Runs one model instance on a dedicated thread so the event loop never blocks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"instance-{name}")
        self.instance: BackendInstance | None = None

    async def start(self, backend: str, spec: InstanceSpec) -> None:
        loop = asyncio.get_running_loop()
        self.instance = await loop.run_in_executor(self.executor, create_instance, backend, spec)

    async def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        assert self.instance is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.instance.execute, requests)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self.instance is not None:
            await loop.run_in_executor(self.executor, self.instance.finalize)
            self.instance = None
        self.executor.shutdown(wait=False)
