"""Which instance runs next: the first idle one, or the one the rate limiter grants."""

from __future__ import annotations

import asyncio

from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.scheduling.rate_limiter import RateLimiter


class InstancePool:
    """Hands out a model version's instances one execution at a time.

    Without a rate limiter (or with ``--rate-limit=off``) any idle instance goes, in turn;
    with one, an instance goes only when the limiter grants its resources, by its priority.
    """

    def __init__(
        self,
        runners: list[InstanceRunner],
        limiter: RateLimiter | None = None,
        keys: list[str] | None = None,
    ) -> None:
        self.runners = runners
        self.limiter = limiter if limiter is not None and limiter.enabled else None
        self._by_key: dict[str, InstanceRunner] = {}
        self._key_of: dict[int, str] = {}
        if self.limiter is not None:
            assert keys is not None and len(keys) == len(runners)
            self._keys = list(keys)
            for key, runner in zip(keys, runners, strict=True):
                self._by_key[key] = runner
                self._key_of[id(runner)] = key
        self._idle: asyncio.Queue[InstanceRunner] = asyncio.Queue()
        self._waiting = 0  # takers waiting for an idle instance
        for runner in runners:
            self._idle.put_nowait(runner)

    async def take(self) -> InstanceRunner:
        if self.limiter is None:
            self._waiting += 1
            try:
                return await self._idle.get()
            finally:
                self._waiting -= 1
        return self._by_key[await self.limiter.acquire(self._keys)]

    def take_idle(self) -> InstanceRunner | None:
        """An idle instance at once, or None: none is idle, others wait for one (they go first),
        or the rate limiter decides (it grants in its own order)."""
        if self.limiter is not None or self._waiting or self._idle.empty():
            return None
        return self._idle.get_nowait()

    def give_back(self, runner: InstanceRunner) -> None:
        if self.limiter is None:
            self._idle.put_nowait(runner)
        else:
            self.limiter.release(self._key_of[id(runner)])
