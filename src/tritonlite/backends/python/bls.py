"""Business logic scripting: a python model's ``InferenceRequest.exec`` runs through the server.

A model calls ``exec`` on its instance thread; ``Bls`` turns the ``pb_utils`` request into a core
request, runs it on the event loop with the server's ``infer`` (or ``infer_stream`` for a decoupled
call) and waits for the answer, which it gives back as ``pb_utils`` responses.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import numpy as np
import orjson

from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.core.datatypes import datatype_of
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.streaming import StreamItem
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput


class Bls:
    """Runs the BLS requests of python models with the server's ``infer`` and ``infer_stream``."""

    def __init__(
        self,
        infer: Callable[[InferRequest], Awaitable[InferResponse]],
        infer_stream: Callable[[InferRequest], AsyncIterator[StreamItem]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.infer = infer
        self.infer_stream = infer_stream
        self.loop = loop

    def install(self) -> None:
        """Serve every python model's ``exec`` from now on."""
        pb_utils._bls_executor = self

    def __call__(self, pb_request: pb_utils.InferenceRequest, decoupled: bool) -> object:
        """A model's BLS call (``InferenceRequest.exec``), run from its instance thread.

        With ``decoupled`` the answer is an iterator of responses (the last one, flagged final by
        the model, may be empty), as in Triton's python backend.
        """
        request = core_request(pb_request)
        if decoupled:
            return self._stream(request)
        future = asyncio.run_coroutine_threadsafe(self.infer(request), self.loop)
        try:
            response = future.result()
        except TritonError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(exc.message))
        return pb_response(response)

    def _stream(self, request: InferRequest) -> Iterator[pb_utils.InferenceResponse]:
        """The responses of a decoupled BLS call, handed to the model's thread one by one."""
        items: queue.Queue = queue.Queue()

        async def pump() -> None:
            try:
                async for response, final in self.infer_stream(request):
                    items.put((response, final))
                    if final:
                        return
            except TritonError as exc:
                items.put((exc, True))
            except Exception as exc:  # never leave the model waiting
                items.put((TritonError(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"), True))

        asyncio.run_coroutine_threadsafe(pump(), self.loop)

        def responses() -> Iterator[pb_utils.InferenceResponse]:
            while True:
                response, final = items.get()
                if isinstance(response, TritonError):
                    yield pb_utils.InferenceResponse(error=pb_utils.TritonError(response.message))
                elif response is not None:
                    yield pb_response(response)
                elif final:
                    yield pb_utils.InferenceResponse([])  # the final flag alone: an empty response
                if final:
                    return

        return responses()


def core_request(pb_request: pb_utils.InferenceRequest) -> InferRequest:
    """The server's request for a model's ``pb_utils.InferenceRequest``."""
    inputs = []
    for tensor in pb_request.inputs():
        array = tensor.as_numpy()
        inputs.append(InferTensor(tensor.name(), tensor._wire or datatype_of(array), list(array.shape), array))
    names = pb_request.requested_output_names()
    version = pb_request._model_version
    request = InferRequest(
        pb_request.model_name(),
        str(version) if version and version > 0 else "",
        pb_request.request_id(),
        inputs,
        [RequestedOutput(name) for name in names] or None,
        orjson.loads(pb_request.parameters() or "{}"),
    )
    request.correlation_id = pb_request.correlation_id()
    request.flags = pb_request.flags()
    request.timeout_us = pb_request.timeout()
    return request


def pb_response(response: InferResponse) -> pb_utils.InferenceResponse:
    """A server response as the ``pb_utils.InferenceResponse`` the model gets."""
    return pb_utils.InferenceResponse(
        [pb_utils.Tensor(t.name, np.asarray(t.data), t.datatype) for t in response.outputs]
    )
