"""One input of a request head that repeats: what the HTTP header cache and the gRPC head cache keep
per tensor, and how they make the next request's tensor from new bytes."""

from __future__ import annotations

from typing import NamedTuple

from tritonlite.core.datatypes import element_count, tensor_from_bytes
from tritonlite.core.types import InferTensor


class InputLayout(NamedTuple):
    """An input of a fixed-size type: its name, type and shape, and the size its bytes must have."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    count: int  # elements
    size: int  # bytes

    @classmethod
    def of(cls, tensor: InferTensor) -> InputLayout:
        shape = tuple(tensor.shape)
        return cls(tensor.name, tensor.datatype, shape, element_count(shape), tensor.data.nbytes)

    def tensor(self, chunk: memoryview) -> InferTensor:
        """The input with ``chunk`` (of ``size`` bytes) as its contents, viewed, not copied."""
        return InferTensor(
            self.name, self.datatype, list(self.shape), tensor_from_bytes(chunk, self.datatype, self.shape, self.count)
        )
