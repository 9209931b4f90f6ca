"""Triton's dynamic batcher: one queue per model, batches formed as instances free up.

Rules (Triton's):
- requests join a batch only if every input has the same non-batch shape (any shape for an input
  with allow_ragged_batch) and datatype as the batch's first request; the first request that
  does not fit closes the batch;
- a batch never exceeds max_batch_size (counted in batch-dimension units, not requests);
- a batch goes out at once when it is full (max_batch_size, the largest preferred size, or the
  next request does not fit), or when the queue holds a prefix that makes a preferred size (that
  prefix goes); otherwise it waits until the oldest request has waited
  max_queue_delay_microseconds, then everything gathered goes;
- a priority outside 1..priority_levels (or 0) means the default level;
- a request's ``timeout`` applies only with allow_timeout_override, and can only shorten the
  queue policy's default timeout; expired requests are rejected (or, with DELAY, moved behind
  the others) when the next batch forms;
- priority levels are separate queues, level 1 first; each level has its queue policy
  (max_queue_size, default timeout, REJECT or DELAY on timeout, timeout override);
- with preserve_ordering, responses are released in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

from tritonlite.core.errors import internal, unavailable
from tritonlite.core.types import InferRequest
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import Scheduler, SchedulerResult
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.statistics.model_stats import ModelStats
from tritonlite.tracing.tracer import stamp_compute


@dataclass(frozen=True)
class QueuePolicy:
    """ModelQueuePolicy, resolved."""

    max_queue_size: int = 0
    default_timeout_us: int = 0
    allow_timeout_override: bool = False
    delay_on_timeout: bool = False

    @classmethod
    def from_config(cls, policy: mc.ModelQueuePolicy) -> QueuePolicy:
        return cls(
            max_queue_size=policy.max_queue_size,
            default_timeout_us=policy.default_timeout_microseconds,
            allow_timeout_override=policy.allow_timeout_override,
            delay_on_timeout=policy.timeout_action == mc.ModelQueuePolicy.DELAY,
        )


class _Pending:
    """A queued request: its future, batch size, shape signature and deadline."""

    __slots__ = ("request", "future", "batch", "signature", "enqueued", "deadline", "delayed")

    def __init__(self, request: InferRequest, future: asyncio.Future, batch: int, signature: tuple, deadline: float):
        self.request = request
        self.future = future
        self.batch = batch
        self.signature = signature
        self.enqueued = time.monotonic()
        self.deadline = deadline
        self.delayed = False


def _signature(request: InferRequest, ragged: frozenset[str] = frozenset()) -> tuple:
    """What must match for two requests to share a batch: each input's name, datatype and non-batch
    shape (not the shape of an ``allow_ragged_batch`` input, as in Triton)."""
    inputs = request.inputs
    if len(inputs) == 1 and not ragged:
        tensor = inputs[0]
        return ((tensor.name, tensor.datatype, tuple(tensor.shape[1:])),)
    return tuple(sorted((t.name, t.datatype, () if t.name in ragged else tuple(t.shape[1:])) for t in inputs))


def _batch_size(request: InferRequest) -> int:
    for tensor in request.inputs:
        if tensor.shape:
            return tensor.shape[0]
    return 1


class DynamicBatcher(Scheduler):
    """Queues requests per priority level and feeds batches to idle instances."""

    def __init__(
        self,
        runners: list[InstanceRunner],
        config: mc.ModelConfig,
        stats: ModelStats | None = None,
        pool: InstancePool | None = None,
    ) -> None:
        self.runners = runners
        self.pool = pool if pool is not None else InstancePool(runners)
        self.stats = stats if stats is not None else ModelStats()
        self.model_name = config.name
        batching = config.dynamic_batching
        self.max_batch_size = max(config.max_batch_size, 1)
        self.ragged = frozenset(t.name for t in config.input if t.allow_ragged_batch)
        self.preferred = sorted({p for p in batching.preferred_batch_size if 0 < p <= self.max_batch_size})
        self.delay = batching.max_queue_delay_microseconds / 1e6
        self.preserve_ordering = batching.preserve_ordering
        self.levels = max(int(batching.priority_levels), 1)
        default_level = int(batching.default_priority_level) if batching.priority_levels else 1
        self.default_level = min(max(default_level, 1), self.levels)
        default_policy = QueuePolicy.from_config(batching.default_queue_policy)
        self.policies = [
            QueuePolicy.from_config(batching.priority_queue_policy[level])
            if level in batching.priority_queue_policy
            else default_policy
            for level in range(1, self.levels + 1)
        ]
        self.queues: list[collections.deque[_Pending]] = [collections.deque() for _ in range(self.levels)]
        self.delayed: collections.deque[_Pending] = collections.deque()
        self._waiter: asyncio.Future | None = None  # set while _run sleeps; admission wakes it
        # while _run sleeps until the queue delay ends: [that time, rows queued, the batch's signature];
        # an arrival that cannot complete or close the batch leaves it asleep
        self._armed: list | None = None
        self._wake_rows = self.preferred[0] if self.preferred else self.max_batch_size
        self._last_release: asyncio.Future | None = None
        self._inflight: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop _run started on

    # --- admission -------------------------------------------------------------------------------

    def enqueue(self, request: InferRequest) -> asyncio.Future[SchedulerResult]:
        """Queue ``request``; its future gets the result (a TritonError result is the backend's
        error). Cancelling the future takes the request out of the queue if it has not run yet
        (its slot is skipped when batches form). Raises TritonError when the queue is full."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run())
        level = request.priority
        if level < 1 or level > self.levels:
            level = self.default_level  # as Triton: out of range means the default level
        policy = self.policies[level - 1]
        queue = self.queues[level - 1]
        if policy.max_queue_size and len(queue) >= policy.max_queue_size:
            raise unavailable(f"[request id: {request.id or '<id_unknown>'}] Exceeds maximum queue size")
        timeout_us = policy.default_timeout_us
        if request.timeout_us and policy.allow_timeout_override:
            timeout_us = min(timeout_us, request.timeout_us) if timeout_us else request.timeout_us
        future = self._loop.create_future()
        deadline = time.monotonic() + timeout_us / 1e6 if timeout_us else float("inf")
        pending = _Pending(request, future, _batch_size(request), _signature(request, self.ragged), deadline)
        queue.append(pending)
        armed = self._armed
        if armed is None or self.levels > 1:
            self._wake()
        else:
            armed[1] += pending.batch
            if armed[1] >= self._wake_rows or pending.signature != armed[2] or pending.deadline < armed[0]:
                self._wake()
        return future

    # --- batch formation -------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, now: float, wake_at: float | None) -> None:
        """Wait until ``wake_at`` or until an arriving request may complete or close the batch.

        A plain future and a timer (``asyncio.wait_for`` would create a task each time). With a
        timer running, the queue holds one batch in the making (``_form`` found it neither full
        nor closed): arrivals only wake this when they bring it to the smallest preferred size
        (or max_batch_size), do not fit its shapes, or have an earlier queue timeout.
        """
        self._waiter = waiter = loop.create_future()
        timer = None
        if wake_at is not None:
            timer = loop.call_later(max(wake_at - now, 0.0), self._wake)
            candidates = self._candidates()  # one batch in the making: same shapes, not full
            self._armed = [wake_at, sum(item.batch for item in candidates), candidates[0].signature]
        try:
            await waiter
        finally:
            self._waiter = None
            self._armed = None
            if timer is not None:
                timer.cancel()

    def _expire(self, now: float) -> None:
        """Drop cancelled requests; reject or demote those whose queue timeout passed."""
        for level, queue in enumerate(self.queues):
            if not queue:
                continue
            if all(item.deadline > now and not item.future.done() for item in queue):
                continue  # the common case: nothing to drop, no new deque
            delay_policy = self.policies[level].delay_on_timeout
            kept: collections.deque[_Pending] = collections.deque()
            for item in queue:
                if item.future.done():
                    continue
                if item.deadline <= now:
                    if delay_policy:
                        item.delayed = True
                        item.deadline = float("inf")
                        self.delayed.append(item)
                    else:
                        item.future.set_exception(unavailable("Request timeout expired"))
                    continue
                kept.append(item)
            self.queues[level] = kept
        if self.delayed and any(i.future.done() for i in self.delayed):
            self.delayed = collections.deque(i for i in self.delayed if not i.future.done())

    def _candidates(self) -> list[_Pending]:
        """Requests in the order batches take them: priority levels first, delayed ones last."""
        ordered: list[_Pending] = []
        for queue in self.queues:
            ordered.extend(queue)
        ordered.extend(self.delayed)
        return ordered

    def _form(self, now: float) -> tuple[list[_Pending], float | None]:
        """The batch to send now, or ([], when to look again)."""
        candidates = self._candidates()
        if not candidates:
            return [], None
        first = candidates[0]
        batch: list[_Pending] = []
        total = 0
        closed = False
        for item in candidates:
            if item.signature != first.signature or total + item.batch > self.max_batch_size:
                closed = True
                break
            batch.append(item)
            total += item.batch
        target = self.preferred[-1] if self.preferred else self.max_batch_size
        if closed or total >= target or self.delay <= 0:
            return batch, None
        oldest = min(item.enqueued for item in batch)
        if now >= oldest + self.delay:
            return batch, None
        preferred = self._preferred_prefix(batch)
        if preferred:
            return preferred, None
        wake_at = oldest + self.delay
        next_deadline = min((i.deadline for i in candidates), default=float("inf"))
        return [], min(wake_at, next_deadline)

    def _preferred_prefix(self, batch: list[_Pending]) -> list[_Pending]:
        """The longest prefix whose size is a preferred batch size (empty when none is)."""
        if not self.preferred:
            return []
        best = 0
        total = 0
        for index, item in enumerate(batch):
            total += item.batch
            if total in self.preferred:
                best = index + 1
        return batch[:best]

    def _remove(self, batch: list[_Pending]) -> None:
        taken = set(map(id, batch))
        for level, queue in enumerate(self.queues):
            if any(id(i) in taken for i in queue):
                self.queues[level] = collections.deque(i for i in queue if id(i) not in taken)
        if self.delayed:
            self.delayed = collections.deque(i for i in self.delayed if id(i) not in taken)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            runner = await self.pool.take()
            while True:
                now = time.monotonic()
                self._expire(now)
                batch, wake_at = self._form(now)
                if batch:
                    break
                await self._sleep(loop, now, wake_at)
            self._remove(batch)
            release_after = self._last_release
            done = loop.create_future() if self.preserve_ordering else None
            if done is not None:
                self._last_release = done
            task = loop.create_task(self._execute(runner, batch, release_after, done))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _execute(
        self,
        runner: InstanceRunner,
        batch: list[_Pending],
        release_after: asyncio.Future | None,
        done: asyncio.Future | None,
    ) -> None:
        now = time.monotonic_ns()
        self.stats.record_queues([now - item.request.arrival_ns for item in batch])
        try:
            try:
                requests = [item.request for item in batch]
                results = await runner.execute(requests)
                stamp_compute(requests, now, time.monotonic_ns(), runner.last_timings)
                self.stats.record_execution(sum(item.batch for item in batch), len(batch), *runner.last_timings)
            except Exception as exc:  # a backend bug fails this batch, not the server
                results = [internal(f"{type(exc).__name__}: {exc}")] * len(batch)
        finally:
            self.pool.give_back(runner)
        if release_after is not None and not release_after.done():
            await asyncio.shield(release_after)
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if done is not None:
            done.set_result(None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in list(self._inflight):
            await asyncio.gather(task, return_exceptions=True)
        for item in self._candidates():
            if not item.future.done():
                item.future.set_exception(unavailable("Server is stopping"))
        for runner in self.runners:
            await runner.stop()
