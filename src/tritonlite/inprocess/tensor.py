"""Tensors of the in-process API: a numpy array with Triton's data type, readable with
``numpy.asarray`` or through DLPack (``numpy.from_dlpack``, ``torch.from_dlpack``).

Everything lives in CPU memory: tritonlite's engine hands numpy arrays around.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tritonlite.core.datatypes import datatype_of, deserialize_bytes, serialize_bytes
from tritonlite.core.errors import TritonError as CoreTritonError
from tritonlite.inprocess.errors import InvalidArgumentError, UnsupportedError


class DataType(enum.IntEnum):
    """TRITONSERVER_DataType, with the C API's values."""

    INVALID = 0
    BOOL = 1
    UINT8 = 2
    UINT16 = 3
    UINT32 = 4
    UINT64 = 5
    INT8 = 6
    INT16 = 7
    INT32 = 8
    INT64 = 9
    FP16 = 10
    FP32 = 11
    FP64 = 12
    BYTES = 13
    BF16 = 14


class MemoryType(enum.IntEnum):
    """TRITONSERVER_MemoryType; tritonlite's tensors are all ``CPU``."""

    CPU = 0
    CPU_PINNED = 1
    GPU = 2


# DLPack's kDLCPU
_DLPACK_CPU = 1


@runtime_checkable
class SupportsDLPack(Protocol):
    """An object another library can read through DLPack (numpy arrays, torch tensors, ...)."""

    def __dlpack__(self, **kwargs: Any) -> Any: ...

    def __dlpack_device__(self) -> tuple[int, int]: ...


class Tensor:
    """A tensor: ``data_type``, ``shape`` and its elements (a numpy array; BYTES: objects of bytes)."""

    __slots__ = ("data_type", "shape", "_array")

    def __init__(self, data_type: DataType, shape: Sequence[int], array: np.ndarray) -> None:
        self.data_type = data_type
        self.shape = list(shape)
        self._array = array

    def __repr__(self) -> str:
        return f"Tensor(data_type={self.data_type.name}, shape={self.shape})"

    # --- where the data is --------------------------------------------------------------------

    @property
    def memory_type(self) -> MemoryType:
        return MemoryType.CPU

    @property
    def memory_type_id(self) -> int:
        return 0

    @property
    def size(self) -> int:
        """The data's size in bytes (BYTES: serialized, 4-byte length before each element)."""
        if self.data_type == DataType.BYTES:
            return len(serialize_bytes(self._array))
        return self._array.nbytes

    @property
    def data_ptr(self) -> int:
        if self.data_type == DataType.BYTES:
            raise UnsupportedError("a BYTES tensor has no flat buffer in tritonlite: use to_bytes_array()")
        return self._array.ctypes.data

    # --- reading -----------------------------------------------------------------------------

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self._array
        if dtype is not None and array.dtype != dtype:
            return array.astype(dtype)
        if copy:
            return array.copy()
        return array

    def __dlpack__(self, **kwargs: Any) -> Any:
        """DLPack export of the elements (numpy's); BYTES and BF16 have no numpy DLPack form."""
        if self.data_type in (DataType.BYTES, DataType.BF16):
            raise UnsupportedError(
                f"DLPack export of a {self.data_type.name} tensor is not supported: "
                + ("use to_bytes_array()" if self.data_type == DataType.BYTES else "use numpy.asarray (uint16 words)")
            )
        # numpy 1.x takes only ``stream``; pass the newer keywords only when a consumer sets them
        return self._array.__dlpack__(**{key: value for key, value in kwargs.items() if value is not None})

    def __dlpack_device__(self) -> tuple[int, int]:
        return (_DLPACK_CPU, 0)

    def to_bytes_array(self) -> np.ndarray:
        """A BYTES tensor's elements as a numpy object array of ``bytes``."""
        if self.data_type != DataType.BYTES:
            raise InvalidArgumentError(f"Tensor has data type {self.data_type!r} not {DataType.BYTES!r}")
        return self._array

    def to_string_array(self) -> np.ndarray:
        """A BYTES tensor's elements decoded as UTF-8, as a numpy ``str`` array."""
        items = self.to_bytes_array()
        return np.array([item.decode("utf-8") for item in items.flat], dtype=np.str_).reshape(items.shape)

    def to_host(self) -> Tensor:
        return self

    def to_device(self, device: Any) -> Tensor:
        if device in ("cpu", MemoryType.CPU, (MemoryType.CPU, 0), (_DLPACK_CPU, 0)):
            return self
        raise UnsupportedError(f"Conversion from {(MemoryType.CPU, 0)} to {device} not supported.")

    # --- making --------------------------------------------------------------------------------

    @staticmethod
    def from_dlpack(obj: Any) -> Tensor:
        """A tensor of a DLPack-capable object in CPU memory (a numpy array, a CPU torch tensor...)."""
        try:
            array = np.from_dlpack(obj)
        except (TypeError, ValueError, BufferError, RuntimeError) as exc:
            raise InvalidArgumentError(f"cannot read {type(obj).__name__} through DLPack: {exc}") from None
        return Tensor._from_array(array)

    @staticmethod
    def from_bytes_array(bytes_array: Sequence[str | bytes] | np.ndarray) -> Tensor:
        tensor = Tensor._from_object(bytes_array)
        if tensor.data_type != DataType.BYTES:
            raise InvalidArgumentError(
                f"Unsupported conversion from {bytes_array} to Triton BYTES Tensor. Got {tensor.data_type!r}"
            )
        return tensor

    from_string_array = from_bytes_array

    @staticmethod
    def _from_object(obj: Any) -> Tensor:
        """An input value as a tensor: a Tensor, numpy array or scalar, list, or DLPack-capable object."""
        if isinstance(obj, Tensor):
            return obj
        if isinstance(obj, np.ndarray | np.generic):
            return Tensor._from_array(np.asarray(obj))
        if isinstance(obj, list | tuple):
            return Tensor._from_array(np.array(obj))
        if isinstance(obj, SupportsDLPack):
            return Tensor.from_dlpack(obj)
        raise InvalidArgumentError(
            f"Input type {type(obj)} not supported. Must be a numpy array, a list, a Tensor or support __dlpack__"
        )

    @staticmethod
    def _from_array(array: np.ndarray) -> Tensor:
        try:
            datatype = datatype_of(array)
        except CoreTritonError as exc:
            raise InvalidArgumentError(exc.message) from None
        if datatype == "BYTES":
            array = _bytes_elements(array)
        return Tensor(DataType[datatype], array.shape, array)

    @property
    def datatype(self) -> str:
        """The wire name of the data type (``FP32``)."""
        return self.data_type.name

    def array(self) -> np.ndarray:
        """The elements as the engine holds them."""
        return self._array


def _bytes_elements(array: np.ndarray) -> np.ndarray:
    """An object array of ``bytes`` (str encoded as UTF-8), the form the engine gives python models."""
    if array.dtype.kind == "O" and all(isinstance(item, bytes) for item in array.flat):
        return array
    items = deserialize_bytes(serialize_bytes(array))
    out = np.empty(len(items), dtype=np.object_)
    out[:] = items
    return out.reshape(array.shape)
