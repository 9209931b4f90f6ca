"""Request and response types of the core, shared by every frontend and backend.

They are plain slotted classes: one request allocates a handful of these, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


class InferTensor:
    """A named tensor: wire datatype, shape and a numpy array holding the elements."""

    __slots__ = ("name", "datatype", "shape", "data", "parameters")

    def __init__(
        self,
        name: str,
        datatype: str,
        shape: list[int],
        data: np.ndarray,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.data = data
        self.parameters = parameters

    def __repr__(self) -> str:
        return f"InferTensor({self.name!r}, {self.datatype}, {self.shape})"


class RequestedOutput:
    """An output the client asked for, with its per-output parameters."""

    __slots__ = ("name", "parameters", "class_count")

    def __init__(self, name: str, parameters: dict[str, Any] | None = None, class_count: int = 0) -> None:
        self.name = name
        self.parameters = parameters
        self.class_count = class_count


class InferRequest:
    """One inference request as the core sees it."""

    __slots__ = (
        "model_name",
        "model_version",
        "id",
        "inputs",
        "outputs",
        "parameters",
        "priority",
        "timeout_us",
        "correlation_id",
        "flags",
        "arrival_ns",
        "trace",
        "stream",
        "validation_key",
        "cancelled",
        "on_cancel",
    )

    def __init__(
        self,
        model_name: str,
        model_version: str = "",
        id: str = "",
        inputs: list[InferTensor] | None = None,
        outputs: list[RequestedOutput] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.id = id
        self.inputs = inputs if inputs is not None else []
        self.outputs = outputs
        self.parameters = parameters if parameters is not None else {}
        self.priority = 0
        self.timeout_us = 0
        self.correlation_id: int | str = 0
        self.flags = 0
        self.arrival_ns = 0
        self.trace = None  # a tracing.Trace when this request is sampled
        self.stream = None  # a streaming.ResponseStream for requests to decoupled models
        # requests with the same key (not None) validate alike: a frontend gives one to requests it
        # built from one decoded header, so a model version validates that header once
        self.validation_key: Hashable | None = None
        # set once the client withdrew the request (disconnect, cancelled RPC, closed stream);
        # a running model sees it through ``is_cancelled()``
        self.cancelled = False
        # called (on the event loop) when it is set: how a backend that runs elsewhere is told
        self.on_cancel: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Mark the request cancelled (once) and tell ``on_cancel``."""
        if self.cancelled:
            return
        self.cancelled = True
        hook = self.on_cancel
        if hook is not None:
            hook()

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # ``on_cancel`` belongs to this process: a copy in a stub process goes without it
        state = {name: getattr(self, name) for name in self.__slots__ if name != "on_cancel"}
        return None, state

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        for name, value in state[1].items():
            setattr(self, name, value)
        self.on_cancel = None


SEQUENCE_START = 1
SEQUENCE_END = 2


def apply_sequence_parameter(request: InferRequest, key: str, value: Any) -> bool:
    """Take ``sequence_id``/``sequence_start``/``sequence_end`` into the request; False for other keys."""
    if key == "sequence_id":
        request.correlation_id = value
    elif key == "sequence_start":
        request.flags |= SEQUENCE_START if value else 0
    elif key == "sequence_end":
        request.flags |= SEQUENCE_END if value else 0
    else:
        return False
    return True


class InferResponse:
    """The result of one request: output tensors in the order the model or client gave them."""

    __slots__ = ("model_name", "model_version", "id", "outputs", "parameters")

    def __init__(
        self,
        model_name: str,
        model_version: str,
        id: str,
        outputs: list[InferTensor],
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.id = id
        self.outputs = outputs
        self.parameters = parameters
