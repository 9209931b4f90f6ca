"""A started in-process server: the engine, its loop thread and the dispatcher of requests."""

from __future__ import annotations

import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, TypeVar

from tritonlite.core.errors import TritonError as CoreTritonError
from tritonlite.core.types import InferRequest
from tritonlite.engine import Engine, EngineOptions
from tritonlite.inprocess.dispatch import Dispatcher, Ticket
from tritonlite.inprocess.errors import InternalError, InvalidArgumentError, public_error
from tritonlite.inprocess.loop_thread import LoopThread

T = TypeVar("T")

log = logging.getLogger(__name__)


class Service(ABC):
    """Something served on the engine's loop beside it (an HTTP or gRPC endpoint), closed before it stops."""

    @abstractmethod
    async def open(self, engine: Engine) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class Runtime:
    """The engine on its own loop thread, from ``start`` to ``stop``."""

    def __init__(self, thread: LoopThread, engine: Engine) -> None:
        self.thread = thread
        self.engine = engine
        self.dispatcher = Dispatcher(engine)
        self.stopped = False
        self.services: set[Service] = set()
        # stops the engine once: on stop(), when nothing refers to this runtime any more (its Server
        # and every Model of it gone), or at interpreter exit (the loop thread is a daemon)
        self._stop_once = weakref.finalize(self, _stop, thread, engine, self.dispatcher, self.services)

    @classmethod
    def start(cls, options: EngineOptions, exit_on_error: bool) -> Runtime:
        """Load the repository on a new loop thread; on failure nothing is left running."""
        thread = LoopThread()
        try:
            engine = thread.run(_start_engine(options, exit_on_error))
        except BaseException as exc:
            thread.close()
            if isinstance(exc, CoreTritonError):
                raise public_error(exc) from None
            raise
        return cls(thread, engine)

    def check(self) -> None:
        if self.stopped:
            raise InvalidArgumentError("Server not started")

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """A coroutine of the engine, run on its loop; core errors raised as the API's."""
        if self.stopped:
            coroutine.close()
            raise InvalidArgumentError("Server not started")
        try:
            return self.thread.run(coroutine)
        except CoreTritonError as exc:
            raise public_error(exc) from None

    def call(self, fn: Any, *args: Any) -> Any:
        """An engine method, called on its loop; core errors raised as the API's."""
        self.check()
        try:
            return self.thread.call(fn, *args)
        except CoreTritonError as exc:
            raise public_error(exc) from None

    def lookup_decoupled(self, request: InferRequest) -> bool:
        """Whether the ready model the request names is decoupled; NotFoundError/UnavailableError
        (the wire's texts) for a model that cannot answer.

        Run in the caller's thread, so ``infer`` raises for an unknown model as ``tritonserver``
        does: one read of the engine's table of serving versions.
        """
        self.check()
        try:
            return self.engine.ready_model(request.model_name, request.model_version).decoupled
        except CoreTritonError as exc:
            raise public_error(exc) from None

    def submit(self, ticket: Ticket, request: InferRequest, decoupled: bool) -> None:
        self.check()
        try:
            self.thread.loop.call_soon_threadsafe(self.dispatcher.start, ticket, request, decoupled)
        except RuntimeError:  # the loop closed since the check
            raise InvalidArgumentError("Server not started") from None

    def cancel(self, ticket: Ticket) -> None:
        try:
            self.thread.loop.call_soon_threadsafe(self.dispatcher.cancel, ticket)
        except RuntimeError:  # stopped: the ticket was answered already
            pass

    def open_service(self, service: Service) -> None:
        self.run(service.open(self.engine))
        self.services.add(service)

    def close_service(self, service: Service) -> None:
        if service in self.services:
            self.services.discard(service)
            self.run(service.close())

    def stop(self) -> None:
        """Stop the engine (models finalized), answer what is left, end the loop thread."""
        self.stopped = True
        try:
            self._stop_once()
        except CoreTritonError as exc:
            raise public_error(exc) from None


def _stop(thread: LoopThread, engine: Engine, dispatcher: Dispatcher, services: set[Service]) -> None:
    """Close the services, stop the engine on its loop, answer every request still open, then end
    the loop thread."""

    async def stop_engine() -> None:
        for service in list(services):
            try:
                await service.close()
            except Exception:  # one endpoint failing to close must not keep the engine running
                log.exception("closing an in-process endpoint failed")
        services.clear()
        try:
            await engine.stop()
        finally:
            dispatcher.stop()

    try:
        thread.run(stop_engine())
    finally:
        thread.close()


async def _start_engine(options: EngineOptions, exit_on_error: bool) -> Engine:
    engine = Engine(options)
    try:
        await engine.start()
        if exit_on_error and not engine.models.all_ready():
            # Triton's TRITONSERVER_ServerNew fails so, after loading the others
            raise InternalError("failed to load all models")
    except BaseException:
        await engine.stop()
        raise
    return engine
