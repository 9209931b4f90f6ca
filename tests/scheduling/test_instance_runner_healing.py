"""The instance runner's healing: the execute watchdog, instances that die, abandoning at shutdown."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.core.errors import ErrorKind, TritonError, unavailable
from tritonlite.core.types import InferRequest
from tritonlite.scheduling import instance_runner
from tritonlite.scheduling.instance_runner import InstanceRunner


class Fake(BackendInstance):
    """Answers "ok" per request; a request with id "hang" blocks until ``release`` (or ``kill``
    when ``killable``)."""

    def __init__(self, number: int, killable: bool) -> None:
        self.number = number
        self.killable = killable
        self.release = threading.Event()
        self.killed = self.finalized = False
        self.on_exit = None
        self.threads: list[str] = []

    def execute(self, requests):
        self.threads.append(threading.current_thread().name)
        if requests[0].id == "hang":
            self.release.wait(30)
        return [f"ok from {self.number}"] * len(requests)

    def kill(self) -> bool:
        self.killed = True
        if self.killable:
            self.release.set()
        return self.killable

    def watch(self, loop, on_exit) -> None:
        self.on_exit = on_exit

    def finalize(self) -> None:
        self.finalized = True


@dataclass
class Factory:
    """Creates the runner's instances (``made``, in order); the next ``fail`` creations raise."""

    made: list[Fake] = field(default_factory=list)
    fail: int = 0

    def create(self, backend: str, spec: InstanceSpec) -> Fake:
        if self.fail:
            self.fail -= 1
            raise unavailable("initialize failed")
        self.made.append(Fake(len(self.made), killable=backend == "process"))
        return self.made[-1]


@pytest.fixture
def factory(monkeypatch) -> Factory:
    made = Factory()
    monkeypatch.setattr(instance_runner, "create_instance", made.create)
    monkeypatch.setattr(instance_runner, "RESTART_BACKOFF_MIN_S", 0.01)
    return made


def spec() -> InstanceSpec:
    return InstanceSpec("m", 1, None, None, instance_name="m_0_0")  # type: ignore[arg-type]


def _request(request_id: str = "") -> InferRequest:
    made = InferRequest("m")
    made.id = request_id
    return made


async def _until(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_watchdog_fails_the_execute_and_replaces_the_instance(factory, backend):
    restarts: list[int] = []

    async def go():
        runner = InstanceRunner("m_0_0", model_name="m", execute_timeout_s=0.2, on_restart=lambda: restarts.append(1))
        await runner.start(backend, spec())
        [error] = await runner.execute([_request("hang")])
        assert isinstance(error, TritonError) and error.kind is ErrorKind.UNAVAILABLE
        assert error.message == (
            "model 'm' did not finish executing the request(s) within its execute time limit of 0.2 s; "
            "instance 'm_0_0' is being restarted"
        )
        assert not runner.healthy
        assert await runner.execute([_request()]) == ["ok from 1"]  # waits for the new instance
        assert runner.healthy and runner.restarts == 1 and restarts == [1]
        first, second = factory.made
        assert first.killed
        if backend == "process":  # killing freed the thread: the dead instance is released there
            await _until(lambda: first.finalized)
            assert second.threads == first.threads
        else:  # the stuck thread is left behind; the new instance has a thread of its own
            assert not first.finalized
            first.release.set()
        await runner.stop()
        assert second.finalized

    asyncio.run(go())


def test_no_watchdog_runs_to_the_end(factory):
    async def go():
        runner = InstanceRunner("m_0_0", model_name="m")
        await runner.start("thread", spec())
        pending = asyncio.ensure_future(runner.execute([_request("hang")]))
        await asyncio.sleep(0.3)
        assert not pending.done() and runner.busy
        factory.made[0].release.set()
        assert await pending == ["ok from 0"]
        await runner.stop()

    asyncio.run(go())


def test_an_instance_that_dies_is_replaced_at_once(factory):
    async def go():
        runner = InstanceRunner("m_0_0", model_name="m")
        await runner.start("process", spec())
        factory.made[0].on_exit("stub process exited (status 3)")
        assert not runner.healthy
        await _until(lambda: runner.healthy)
        assert len(factory.made) == 2 and runner.instance is factory.made[1] and runner.restarts == 1
        factory.made[0].on_exit("stub process exited (status 3)")  # a late second word of the same death
        assert runner.healthy and len(factory.made) == 2
        await runner.stop()

    asyncio.run(go())


def test_a_restart_that_fails_is_tried_again_with_backoff(factory):
    async def go():
        runner = InstanceRunner("m_0_0", model_name="m")
        await runner.start("process", spec())
        factory.fail = 2
        factory.made[0].on_exit("stub process exited (status 3)")
        [error] = await runner.execute([_request()])  # the first try failed: answered at once
        assert (error.kind, error.message) == (
            ErrorKind.UNAVAILABLE,
            "instance 'm_0_0' of model 'm' is being restarted",
        )
        await _until(lambda: runner.healthy)
        assert await runner.execute([_request()]) == ["ok from 1"]
        await runner.stop()

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_abandon_fails_the_execute_in_flight_and_every_later_one(factory, backend):
    async def go():
        runner = InstanceRunner("m_0_0", model_name="m")
        await runner.start(backend, spec())
        pending = asyncio.ensure_future(runner.execute([_request("hang")]))
        await _until(lambda: runner.busy)
        gone = unavailable("Exit timeout expired")
        runner.abandon(gone)
        assert await pending == [gone]
        assert await runner.execute([_request()]) == [gone]
        assert factory.made[0].killed and not factory.made[0].finalized
        await runner.stop()  # nothing left to finalize
        factory.made[0].release.set()

    asyncio.run(go())


def test_withdrawn_execute_of_an_abandoned_thread_does_not_wait_for_it(factory):
    async def go():
        runner = InstanceRunner("m_0_0", model_name="m", execute_timeout_s=0.3)
        await runner.start("thread", spec())
        pending = asyncio.ensure_future(runner.execute([_request("hang")]))
        await _until(lambda: runner.busy)
        pending.cancel()  # the client went away; the instance stays taken until its execute returns ...
        await asyncio.sleep(0)
        assert not pending.done()
        with pytest.raises(asyncio.CancelledError):  # ... or until the watchdog gives up on it
            await asyncio.wait_for(pending, 5)
        await _until(lambda: runner.healthy)
        factory.made[0].release.set()
        await runner.stop()

    asyncio.run(go())
