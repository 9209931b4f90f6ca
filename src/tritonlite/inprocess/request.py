"""``InferenceRequest``: what one in-process inference asks, as ``tritonserver`` spells it."""

from __future__ import annotations

import asyncio
import queue
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tritonlite.core.datatypes import datatype_of
from tritonlite.core.errors import TritonError as CoreTritonError
from tritonlite.core.types import InferRequest, InferTensor
from tritonlite.inprocess.errors import InvalidArgumentError
from tritonlite.inprocess.tensor import Tensor

_PARAMETER_TYPES = (str, int, bool, float)
# numpy dtype kinds an input array is taken as it is
_NUMERIC_KINDS = frozenset("biuf")


def _datatype(array: np.ndarray) -> str:
    try:
        return datatype_of(array)
    except CoreTritonError as exc:  # e.g. float128
        raise InvalidArgumentError(exc.message) from None


class ModelRef(Protocol):
    """What requests and responses know of their model (``inprocess.model.Model``, which uses them)."""

    name: str
    version: int

    def sibling(self, name: str, version: int) -> ModelRef:
        """The model ``name`` at ``version`` on the same server."""
        ...


@dataclass
class InferenceRequest:
    """One request: ``inputs`` maps input names to numpy arrays, lists, ``Tensor`` objects or any
    DLPack-capable CPU tensor; ``timeout`` is in microseconds; ``flags`` take Triton's sequence
    start (1) and end (2) bits with ``correlation_id``. Every output of the model is returned.

    ``response_queue``: a ``queue.SimpleQueue`` (``infer``) or ``asyncio.Queue`` (``async_infer``)
    that also receives each response as the iterator reads it.
    """

    model: ModelRef
    request_id: str | None = None
    flags: int = 0
    correlation_id: int | str | None = None
    priority: int = 0
    timeout: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str | int | bool | float] = field(default_factory=dict)
    output_memory_type: Any = None
    response_queue: queue.SimpleQueue | asyncio.Queue | None = None

    def _core_request(self) -> InferRequest:
        """The engine's request; InvalidArgumentError for what cannot be one."""
        if self.output_memory_type not in (None, "cpu", "CPU", 0):
            raise InvalidArgumentError(
                f"Memory type {self.output_memory_type} not supported: tritonlite answers in CPU memory"
            )
        tensors = []
        for name, value in self.inputs.items():
            if type(value) is np.ndarray and value.dtype.kind in _NUMERIC_KINDS:
                datatype = _datatype(value)  # the common case, without a Tensor
            else:
                tensor = Tensor._from_object(value)
                value, datatype = tensor.array(), tensor.datatype
            array = np.ascontiguousarray(value)
            if array.flags.writeable:
                # models read it in place, without a copy; they must not change the caller's array
                array = array.view()
                array.flags.writeable = False
            tensors.append(InferTensor(name, datatype, list(array.shape), array))
        for key, value in self.parameters.items():
            if not isinstance(value, _PARAMETER_TYPES):
                raise InvalidArgumentError(
                    f"Unsupported Request Parameter type {type(value).__name__} for '{key}': str, int, bool or float"
                )
        model = self.model
        request = InferRequest(
            model.name,
            "" if model.version < 0 else str(model.version),
            self.request_id or "",
            tensors,
            None,
            dict(self.parameters),
        )
        request.flags = self.flags
        request.priority = self.priority
        request.timeout_us = self.timeout
        if self.correlation_id is not None:
            request.correlation_id = self.correlation_id
        return request
