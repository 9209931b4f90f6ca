"""``InferenceResponse`` and the iterators that hand a request's responses to its caller."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tritonlite.core.errors import TritonError as CoreTritonError
from tritonlite.core.streaming import StreamItem
from tritonlite.core.types import InferResponse
from tritonlite.inprocess.dispatch import LoopSink
from tritonlite.inprocess.errors import TritonError, public_error
from tritonlite.inprocess.request import InferenceRequest, ModelRef
from tritonlite.inprocess.tensor import DataType, Tensor

# how long a blocked ``next()`` waits before it lets Python run pending signal handlers
_SIGNAL_CHECK_SECONDS = 0.1


@dataclass
class InferenceResponse:
    """One response: ``outputs`` by name, ``error`` when the request failed, ``final`` on the last one."""

    model: ModelRef
    request_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Tensor] = field(default_factory=dict)
    error: TritonError | None = None
    classification_label: str | None = None
    final: bool = False


def _output(datatype: str, shape: list[int], data: np.ndarray) -> Tensor:
    array = np.asarray(data)
    if datatype == "BF16" and array.dtype != np.uint16:
        array = array.view(np.uint16)  # the engine's BF16 storage: 2-byte words
    if list(array.shape) != shape and array.size == int(np.prod(shape, dtype=np.int64)):
        array = array.reshape(shape)
    return Tensor(DataType[datatype], shape, array)


def make_response(request_model: ModelRef, item: StreamItem) -> InferenceResponse:
    """The API's response for one stream item (the core's response, error or bare final flag)."""
    outcome, final = item
    if isinstance(outcome, InferResponse):
        # the version that answered (the request may have named -1)
        model = request_model.sibling(outcome.model_name, int(outcome.model_version or -1))
        outputs = {t.name: _output(t.datatype, list(t.shape), t.data) for t in outcome.outputs}
        return InferenceResponse(model, outcome.id, dict(outcome.parameters or {}), outputs, None, None, final)
    response = InferenceResponse(request_model, final=final)
    if isinstance(outcome, CoreTritonError):
        response.error = public_error(outcome)
    return response


class ResponseIterator:
    """The responses of one request, in order, for a caller thread (``Model.infer``).

    ``next()`` blocks until the next response; with ``raise_on_error`` a failed response raises its
    error. Ctrl-C while waiting withdraws the request. ``cancel()`` withdraws it too.
    """

    def __init__(
        self,
        model: ModelRef,
        items: queue.SimpleQueue,
        cancel: Callable[[], None],
        request: InferenceRequest,
        raise_on_error: bool,
    ) -> None:
        self._model = model
        self._items = items
        self._cancel = cancel
        self._request = request
        self._raise_on_error = raise_on_error
        self._complete = False

    def __iter__(self) -> ResponseIterator:
        return self

    def __next__(self) -> InferenceResponse:
        if self._complete:
            raise StopIteration
        try:
            item = self._next_item()
        except KeyboardInterrupt:
            self.cancel()
            raise
        response = make_response(self._model, item)
        self._complete = response.final
        if self._request.response_queue is not None:
            self._request.response_queue.put(response)
        if response.error is not None and self._raise_on_error:
            raise response.error
        return response

    def _next_item(self) -> StreamItem:
        items = self._items
        while True:
            try:
                # a wait that wakes now and then: a signal's handler (Ctrl-C) runs only between waits
                return items.get(timeout=_SIGNAL_CHECK_SECONDS)
            except queue.Empty:
                continue

    def cancel(self) -> None:
        """Withdraw the request: one not yet run is not run; a stream stops."""
        if not self._complete:
            self._cancel()


class AsyncResponseIterator:
    """The responses of one request for a coroutine on any event loop (``Model.async_infer``).

    Cancelling the awaiting task withdraws the request.
    """

    def __init__(
        self,
        model: ModelRef,
        sink: LoopSink,
        cancel: Callable[[], None],
        request: InferenceRequest,
        raise_on_error: bool,
    ) -> None:
        self._model = model
        self._sink = sink
        self._cancel = cancel
        self._request = request
        self._raise_on_error = raise_on_error
        self._complete = False

    def __aiter__(self) -> AsyncResponseIterator:
        return self

    async def __anext__(self) -> InferenceResponse:
        if self._complete:
            raise StopAsyncIteration
        try:
            item = await self._sink.queue.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        response = make_response(self._model, item)
        self._complete = response.final
        if self._request.response_queue is not None:
            self._request.response_queue.put_nowait(response)
        if response.error is not None and self._raise_on_error:
            raise response.error
        return response

    def cancel(self) -> None:
        """Withdraw the request: one not yet run is not run; a stream stops."""
        if not self._complete:
            self._cancel()
