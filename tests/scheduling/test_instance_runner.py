"""The instance runner: thread by default, inline on the event loop once a model proves cheap."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tritonlite.backends.base import BackendInstance
from tritonlite.scheduling import instance_runner
from tritonlite.scheduling.instance_runner import INLINE_WARMUP_CALLS, InstanceRunner


class Probe(BackendInstance):
    """Records the thread each execute ran on; sleeps `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.threads: list[str] = []

    def execute(self, requests):
        self.threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return list(requests)


def run(runner: InstanceRunner, probe: Probe, calls: int) -> list[str]:
    async def go():
        runner.instance = probe
        for _ in range(calls):
            await runner.execute(["r"])
        await runner.stop()

    asyncio.run(go())
    return probe.threads


def test_cheap_model_moves_onto_the_event_loop_after_warmup():
    threads = run(InstanceRunner("cheap"), Probe(), INLINE_WARMUP_CALLS + 5)
    assert all(t.startswith("instance-cheap") for t in threads[:INLINE_WARMUP_CALLS])
    assert threads[INLINE_WARMUP_CALLS:] == ["MainThread"] * 5


def test_slow_model_stays_on_its_thread(monkeypatch):
    monkeypatch.setattr(instance_runner, "INLINE_MAX_SECONDS", 0.0005)
    threads = run(InstanceRunner("slow"), Probe(delay=0.001), INLINE_WARMUP_CALLS + 3)
    assert all(t.startswith("instance-slow") for t in threads)


def test_a_slow_inline_execute_sends_the_model_back_to_its_thread():
    async def go():
        probe = Probe()
        runner = InstanceRunner("mixed")
        runner.instance = probe
        for _ in range(INLINE_WARMUP_CALLS + 1):
            await runner.execute(["r"])
        assert runner.inline
        probe.delay = instance_runner.INLINE_REVERT_SECONDS * 2
        await runner.execute(["r"])
        assert not runner.inline
        probe.delay = 0
        await runner.execute(["r"])
        await runner.stop()
        return probe.threads

    threads = asyncio.run(go())
    assert threads[-2] == "MainThread" and threads[-1].startswith("instance-mixed")


@pytest.mark.parametrize(("mode", "where"), [("never", "instance-"), ("always", "MainThread")])
def test_forced_modes(mode, where):
    threads = run(InstanceRunner("forced", inline=mode), Probe(), INLINE_WARMUP_CALLS + 3)
    assert all(t.startswith(where) for t in threads)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="inline mode"):
        InstanceRunner("x", inline="sometimes")


def test_instance_thread_runs_calls_in_order_on_one_thread_and_answers_on_the_loop():
    worker = instance_runner.InstanceThread("instance-probe")

    async def go():
        seen = []

        def call(value):
            seen.append((value, threading.current_thread().name))
            return value * 2

        results = await asyncio.gather(*(worker.run(call, i) for i in range(5)))
        return results, seen

    results, seen = asyncio.run(go())
    worker.close()
    worker._thread.join(5)
    assert results == [0, 2, 4, 6, 8]
    assert seen == [(i, "instance-probe") for i in range(5)]
    assert not worker._thread.is_alive()  # close() ends the thread after the calls handed to it


def test_instance_thread_hands_exceptions_to_the_caller():
    worker = instance_runner.InstanceThread("instance-failing")

    def boom():
        raise ValueError("model failed")

    async def go():
        with pytest.raises(ValueError, match="model failed"):
            await worker.run(boom)
        return await worker.run(lambda: "still serving")

    assert asyncio.run(go()) == "still serving"
    worker.close()


def test_instance_thread_ignores_a_caller_that_gave_up():
    worker = instance_runner.InstanceThread("instance-cancelled")
    release = threading.Event()

    async def go():
        future = worker.run(release.wait, 5)
        future.cancel()
        release.set()
        return await worker.run(lambda: "next")  # the cancelled call's answer did not break the thread

    assert asyncio.run(go()) == "next"
    worker.close()
