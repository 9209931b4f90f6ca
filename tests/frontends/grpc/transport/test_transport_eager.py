"""transport/eager.py: a coroutine's first step runs in the caller; one that ends there is a
``Finished``, one that waits goes on in a task that behaves as ``create_task``'s would (its result,
its exception, its cancellation reaching what the coroutine awaits)."""

from __future__ import annotations

import asyncio

import pytest

from tritonlite.frontends.grpc.transport import eager
from tritonlite.frontends.grpc.transport.eager import Finished


def run(main):
    return asyncio.run(asyncio.wait_for(main(), 5))


def test_a_coroutine_that_returns_at_once_is_finished_with_its_value():
    steps = []

    async def answer():
        steps.append("ran")
        return 42

    async def main():
        tasks = asyncio.all_tasks()
        started = eager.start(answer())
        assert steps == ["ran"]  # ran in the caller, before start returned
        assert started == Finished(value=42)
        assert started.error is None
        assert asyncio.all_tasks() == tasks  # and made no task

    run(main)


def test_a_coroutine_that_returns_none_is_finished_with_none():
    async def nothing():
        return None

    async def main():
        assert eager.start(nothing()) == Finished(value=None, error=None)

    run(main)


def test_a_coroutine_that_raises_at_once_is_finished_with_the_error():
    error = ValueError("bad request")

    async def fail():
        raise error

    async def main():
        started = eager.start(fail())
        assert isinstance(started, Finished)
        assert started.error is error
        assert started.value is None

    run(main)


def test_a_coroutine_that_raises_cancelled_error_at_once_is_finished_with_it():
    async def cancelled():
        raise asyncio.CancelledError

    async def main():
        started = eager.start(cancelled())
        assert isinstance(started, Finished)
        assert isinstance(started.error, asyncio.CancelledError)

    run(main)


def test_awaiting_what_is_already_done_does_not_make_a_task():
    async def main():
        done = asyncio.get_running_loop().create_future()
        done.set_result("ready")

        async def use():
            return await done

        assert eager.start(use()) == Finished(value="ready")

    run(main)


def test_a_coroutine_that_awaits_a_future_goes_on_in_a_task():
    steps = []

    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            steps.append("before")
            value = await future
            steps.append("after")
            return value * 2

        task = eager.start(wait())
        assert isinstance(task, asyncio.Task)
        assert steps == ["before"]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not task.done()
        assert steps == ["before"]
        future.set_result(21)
        assert await task == 42
        assert steps == ["before", "after"]

    run(main)


def test_the_task_holds_an_exception_raised_after_the_wait():
    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            await future
            raise KeyError("late")

        task = eager.start(wait())
        future.set_result(None)
        with pytest.raises(KeyError, match="late"):
            await task

    run(main)


def test_the_task_holds_the_exception_the_awaited_future_raises():
    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            try:
                await future
            except RuntimeError as exc:
                return f"caught {exc}"

        task = eager.start(wait())
        future.set_exception(RuntimeError("boom"))
        assert await task == "caught boom"

    run(main)


def test_cancelling_the_task_cancels_the_awaited_future_and_the_coroutine_sees_it():
    seen = []

    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            try:
                await future
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        task = eager.start(wait())
        await asyncio.sleep(0)  # the task has taken over the wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert future.cancelled()
        assert seen == ["cancelled"]

    run(main)


def test_cancelling_the_task_at_once_cancels_the_awaited_future_and_the_coroutine_sees_it():
    """The task is cancelled before the loop ran it once (the client reset the stream in the same read
    that brought the request): the wait the coroutine began must still be cancelled."""
    seen = []

    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            try:
                await future
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                seen.append("finally")

        task = eager.start(wait())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert future.cancelled()
        assert seen == ["cancelled", "finally"]

    run(main)


def test_a_coroutine_that_catches_the_cancellation_gives_its_value():
    async def main():
        future = asyncio.get_running_loop().create_future()

        async def wait():
            try:
                await future
            except asyncio.CancelledError:
                return "cleaned up"

        task = eager.start(wait())
        await asyncio.sleep(0)
        task.cancel()
        assert await task == "cleaned up"

    run(main)


def test_a_coroutine_that_awaits_sleep_zero_several_times():
    steps = []

    async def main():
        async def steps_through():
            for index in range(5):
                steps.append(index)
                await asyncio.sleep(0)
            return "done"

        task = eager.start(steps_through())
        assert isinstance(task, asyncio.Task)
        assert steps == [0]
        assert await task == "done"
        assert steps == [0, 1, 2, 3, 4]

    run(main)


def test_values_sent_into_the_coroutine_after_each_wait_are_the_awaited_results():
    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]

        async def collect():
            return [await future for future in futures]

        task = eager.start(collect())
        for index, future in enumerate(futures):
            await asyncio.sleep(0)
            future.set_result(index * 10)
        assert await task == [0, 10, 20]

    run(main)


def test_the_task_sleeps_for_real():
    async def main():
        loop = asyncio.get_running_loop()

        async def nap():
            begun = loop.time()
            await asyncio.sleep(0.05)
            return loop.time() - begun

        task = eager.start(nap())
        assert isinstance(task, asyncio.Task)
        assert await task >= 0.04

    run(main)


def test_start_outside_a_running_loop_still_runs_a_coroutine_that_finishes_at_once():
    async def answer():
        return "no loop needed"

    assert eager.start(answer()) == Finished(value="no loop needed")
