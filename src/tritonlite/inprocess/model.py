"""``Model``: one model of an in-process server, to query and to infer with."""

from __future__ import annotations

import asyncio
import enum
import queue
from typing import Any

from tritonlite.inprocess.dispatch import LoopSink, Ticket
from tritonlite.inprocess.errors import InvalidArgumentError
from tritonlite.inprocess.request import InferenceRequest
from tritonlite.inprocess.response import AsyncResponseIterator, ResponseIterator
from tritonlite.inprocess.runtime import Runtime


class ModelTxnPropertyFlag(enum.IntFlag):
    """TRITONSERVER_ModelTxnPropertyFlag."""

    ONE_TO_ONE = 1
    DECOUPLED = 2


class ModelBatchFlag(enum.IntFlag):
    """TRITONSERVER_ModelBatchFlag."""

    UNKNOWN = 1
    FIRST_DIM = 2


class Model:
    """A model by name and version (-1: the one the version policy serves), with the state and
    reason the repository index gave where it came from ``Server.models()``."""

    def __init__(
        self, runtime: Runtime, name: str, version: int = -1, state: str | None = None, reason: str | None = None
    ) -> None:
        self._runtime = runtime
        self.name = name
        self.version = version
        self.state = state
        self.reason = reason

    def __repr__(self) -> str:
        return repr({"name": self.name, "version": self.version, "state": self.state})

    def sibling(self, name: str, version: int) -> Model:
        return Model(self._runtime, name, version)

    @property
    def _version_str(self) -> str:
        return "" if self.version < 0 else str(self.version)

    def create_request(self, **kwargs: Any) -> InferenceRequest:
        kwargs.pop("model", None)
        return InferenceRequest(model=self, **kwargs)

    def infer(
        self, inference_request: InferenceRequest | None = None, raise_on_error: bool = True, **kwargs: Any
    ) -> ResponseIterator:
        """Send a request; its responses come from the returned iterator as the model gives them
        (one for most models, zero or more for a decoupled one, the last flagged ``final``).

        Raises NotFoundError or UnavailableError here for a model that is not ready, and
        InvalidArgumentError for inputs that are not tensors; the engine's other refusals
        (shapes, data types) are raised by the iterator.
        """
        request = self._request(inference_request, kwargs, queue.SimpleQueue)
        runtime = self._runtime
        core = request._core_request()
        decoupled = runtime.lookup_decoupled(core)
        items: queue.SimpleQueue = queue.SimpleQueue()
        ticket = Ticket(items)
        runtime.submit(ticket, core, decoupled)
        return ResponseIterator(self, items, lambda: runtime.cancel(ticket), request, raise_on_error)

    def async_infer(
        self, inference_request: InferenceRequest | None = None, raise_on_error: bool = True, **kwargs: Any
    ) -> AsyncResponseIterator:
        """``infer`` for coroutines: an async iterator of the responses, read on the caller's loop
        (the engine keeps running on its own)."""
        request = self._request(inference_request, kwargs, asyncio.Queue)
        runtime = self._runtime
        core = request._core_request()
        decoupled = runtime.lookup_decoupled(core)
        sink = LoopSink(asyncio.get_running_loop())
        ticket = Ticket(sink)
        runtime.submit(ticket, core, decoupled)
        return AsyncResponseIterator(self, sink, lambda: runtime.cancel(ticket), request, raise_on_error)

    def _request(self, given: InferenceRequest | None, kwargs: dict[str, Any], queue_type: type) -> InferenceRequest:
        request = given if given is not None else InferenceRequest(model=self, **kwargs)
        if request.response_queue is not None and not isinstance(request.response_queue, queue_type):
            kind = f"{queue_type.__module__}.{queue_type.__name__}"
            raise InvalidArgumentError(f"{kind} must be used for the response queue")
        return request

    # --- queries -------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self._runtime.call(self._runtime.engine.model_ready, self.name, self._version_str)

    def metadata(self) -> dict[str, Any]:
        return self._runtime.call(self._runtime.engine.model_metadata, self.name, self._version_str)

    def config(self, config_version: int = 1) -> dict[str, Any]:
        return self._runtime.call(self._runtime.engine.model_config, self.name, self._version_str)

    def statistics(self) -> dict[str, Any]:
        return self._runtime.call(self._runtime.engine.statistics, self.name, self._version_str)

    def transaction_properties(self) -> ModelTxnPropertyFlag:
        model = self._runtime.call(self._runtime.engine.ready_model, self.name, self._version_str)
        return ModelTxnPropertyFlag.DECOUPLED if model.decoupled else ModelTxnPropertyFlag.ONE_TO_ONE

    def batch_properties(self) -> ModelBatchFlag:
        model = self._runtime.call(self._runtime.engine.ready_model, self.name, self._version_str)
        return ModelBatchFlag.FIRST_DIM if model.max_batch_size > 0 else ModelBatchFlag.UNKNOWN
