"""Withdrawing a request in the schedulers: a queued one never runs and leaves its queue, a running
one is told (``request.cancelled``, ``on_cancel``) and keeps its instance until its execute ends."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np

from tritonlite.backends.base import BackendInstance
from tritonlite.backends.python.cancel_flags import CancelFlags, StubCancelFlags
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.models.model import ModelVersion
from tritonlite.models.submission import Submission
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.direct import DirectScheduler
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher
from tritonlite.scheduling.instance_runner import InstanceRunner


class Watching(BackendInstance):
    """Runs until its request is cancelled (or ``limit`` seconds); records what it saw."""

    def __init__(self, limit: float = 5.0) -> None:
        self.limit = limit
        self.seen: list[tuple[str, bool]] = []
        self.started = threading.Event()

    def execute(self, requests):
        self.started.set()
        end = time.monotonic() + self.limit
        while time.monotonic() < end and not all(r.cancelled for r in requests):
            time.sleep(0.002)
        self.seen += [(r.id, r.cancelled) for r in requests]
        return [InferResponse(r.model_name, "1", r.id, []) for r in requests]


def request(rid: str) -> InferRequest:
    data = np.zeros([1, 1], np.float32)
    req = InferRequest("m", "1", rid, [InferTensor("x", "FP32", [1, 1], data)])
    req.arrival_ns = time.monotonic_ns()
    return req


def runner_of(instance: BackendInstance) -> InstanceRunner:
    runner = InstanceRunner("m", inline="never")
    runner.instance = instance
    return runner


def test_direct_scheduler_running_and_queued():
    async def go():
        instance = Watching()
        scheduler = DirectScheduler([runner_of(instance)])
        running = scheduler.enqueue(request("running"))
        await asyncio.get_running_loop().run_in_executor(None, instance.started.wait)
        queued = scheduler.enqueue(request("queued"))
        await asyncio.sleep(0.01)
        queued.cancel()
        running.cancel()
        assert scheduler.pool.take_idle() is None  # still executing: the instance is not free yet
        for future in (running, queued):
            try:
                await future
            except asyncio.CancelledError:
                pass
        assert running.cancelled() and queued.cancelled()
        assert instance.seen == [("running", True)]  # the queued one never ran
        assert scheduler.pool.take_idle() is not None  # free again once the execute returned
        await scheduler.stop()

    asyncio.run(go())


def test_dynamic_batcher_running_and_queued(tmp_path):
    async def go():
        instance = Watching()
        config = mc.ModelConfig(name="m", max_batch_size=1)
        config.dynamic_batching.SetInParent()
        version = ModelVersion("m", 1, config, tmp_path)
        batcher = version.scheduler = DynamicBatcher([runner_of(instance)], config, version.stats)
        running_request, queued_request = request("running"), request("queued")
        running = version._admit(running_request)
        await asyncio.get_running_loop().run_in_executor(None, instance.started.wait)
        queued = version._admit(queued_request)
        assert queued.cancel() and running.future.cancel()  # as the client, and as a cancelled awaiting task
        await asyncio.sleep(0)  # the futures' callbacks run
        assert running_request.cancelled and queued_request.cancelled
        while instance.seen == []:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the batcher looks at its queue again once the instance is back
        assert instance.seen == [("running", True)]
        assert not any(batcher.queues) and not batcher.delayed  # nothing left queued
        assert version.stats.failures["CANCELED"] == 2 and version.stats.pending == 0
        await batcher.stop()

    asyncio.run(go())


def test_submission_cancel_marks_the_request_once():
    async def go():
        calls = []
        req = request("r")
        req.on_cancel = lambda: calls.append(1)
        future = asyncio.get_running_loop().create_future()
        submission = Submission(req, future, lambda s: asyncio.CancelledError())
        assert submission.cancel() and req.cancelled
        assert not submission.cancel()  # done already
        req.cancel()
        assert calls == [1]

    asyncio.run(go())


def test_cancel_flags_reach_the_stub_side_by_index():
    flags = CancelFlags()
    try:
        stub = StubCancelFlags(os.dup(flags.fd))
        first, second = request("a"), request("b")
        second.cancel()  # cancelled before it was sent
        with flags.watching([first, second]):
            assert (stub(0), stub(1)) == (False, True)
            stale_hook = first.on_cancel
            first.cancel()
            assert stub(0)
        assert first.on_cancel is None
        with flags.watching([request("next")]):
            assert not stub(0)  # the next execute starts clean
            stale_hook()  # a hook of an execute that ended (caught mid-call) marks nothing
            assert not stub(0)
    finally:
        flags.close()
