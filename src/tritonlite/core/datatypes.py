"""Triton's tensor data types: wire names, config enum names, numpy types and sizes.

BF16 has no numpy type; its elements travel as raw 2-byte words (numpy uint16) and the
tensor keeps the datatype string "BF16" beside the array.
BYTES elements are numpy object arrays of ``bytes``; on the wire each element is a 4-byte
little-endian length followed by its bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from tritonlite.core.errors import invalid_arg

# wire datatype -> numpy dtype (BYTES: object; BF16: uint16 storage)
_NUMPY_BY_DATATYPE: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BF16": np.dtype(np.uint16),
    "BYTES": np.dtype(np.object_),
}

DATATYPES: tuple[str, ...] = tuple(_NUMPY_BY_DATATYPE)

# element size in bytes; 0 for variable-size BYTES
ELEMENT_SIZE: dict[str, int] = {
    name: (0 if name == "BYTES" else dtype.itemsize) for name, dtype in _NUMPY_BY_DATATYPE.items()
}

# numpy dtype -> wire datatype (the inverse, BF16 excluded since it shares uint16)
_DATATYPE_BY_NUMPY: dict[np.dtype, str] = {
    dtype: name for name, dtype in _NUMPY_BY_DATATYPE.items() if name not in ("BF16", "BYTES")
}

# config.pbtxt enum name (TYPE_FP32) <-> wire name (FP32); TYPE_STRING is BYTES
CONFIG_TO_DATATYPE: dict[str, str] = {f"TYPE_{name}": name for name in DATATYPES if name != "BYTES"}
CONFIG_TO_DATATYPE["TYPE_STRING"] = "BYTES"
DATATYPE_TO_CONFIG: dict[str, str] = {v: k for k, v in CONFIG_TO_DATATYPE.items()}


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype that holds elements of a wire datatype."""
    try:
        return _NUMPY_BY_DATATYPE[datatype]
    except KeyError:
        raise invalid_arg(f"invalid datatype '{datatype}'") from None


def datatype_of(array: np.ndarray) -> str:
    """The wire datatype for a numpy array (object and string arrays are BYTES)."""
    dtype = array.dtype
    found = _DATATYPE_BY_NUMPY.get(dtype)
    if found is not None:
        return found
    if dtype.kind in ("O", "S", "U"):
        return "BYTES"
    raise invalid_arg(f"unsupported numpy dtype '{dtype}'")


def is_valid_datatype(datatype: str) -> bool:
    return datatype in _NUMPY_BY_DATATYPE


def element_count(shape: list[int] | tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def serialize_bytes(array: np.ndarray) -> bytes:
    """Length-prefixed encoding of a BYTES tensor, elements in C order."""
    parts = []
    pack = struct.Struct("<I").pack
    for item in array.reshape(-1):
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif not isinstance(item, (bytes, bytearray)):
            item = str(item).encode("utf-8")
        parts.append(pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes | memoryview, count: int | None = None) -> list[bytes]:
    """Split a length-prefixed BYTES buffer into its elements.

    With ``count``, the buffer must hold exactly that many elements.
    """
    view = memoryview(buffer)
    size = len(view)
    items: list[bytes] = []
    offset = 0
    unpack = struct.Struct("<I").unpack_from
    while offset < size:
        if offset + 4 > size:
            raise invalid_arg("unexpected end of BYTES tensor data: incomplete length prefix")
        (length,) = unpack(view, offset)
        offset += 4
        if offset + length > size:
            raise invalid_arg("unexpected end of BYTES tensor data: element longer than the buffer")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if count is not None and len(items) != count:
        raise invalid_arg(f"expected {count} string elements, got {len(items)}")
    return items


def bytes_array(items: list[bytes], shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """An object array of bytes with the given shape."""
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array.reshape(shape)


def tensor_from_bytes(chunk: memoryview | bytes, datatype: str, shape: list[int], count: int) -> np.ndarray:
    """View raw tensor bytes as an array; a wrong size stays a byte array for validation to report."""
    try:
        if datatype == "BYTES":
            return bytes_array(deserialize_bytes(chunk, count), shape)
        if len(chunk) != count * ELEMENT_SIZE[datatype]:
            return np.frombuffer(chunk, dtype=np.uint8)
        return np.frombuffer(chunk, dtype=numpy_dtype(datatype)).reshape(shape)
    except ValueError:  # no element, but dimensions whose product numpy cannot hold (a 0 among huge ones)
        return np.frombuffer(chunk, dtype=np.uint8)


def tensor_buffer(datatype: str, data: np.ndarray) -> np.ndarray | bytes:
    """A tensor's raw contents for the wire: BYTES length-prefixed; others the array itself where it
    can export a C-contiguous buffer (no copy), else a copy.

    Dtypes that cannot export a buffer (e.g. ml_dtypes' bfloat16 from a model) fall back to ``tobytes``.
    """
    if datatype == "BYTES":
        return serialize_bytes(np.asarray(data))
    array = np.ascontiguousarray(data)
    try:
        memoryview(array)
    except (TypeError, ValueError):
        return array.tobytes()
    return array


def tensor_bytes(datatype: str, data: np.ndarray) -> bytes:
    """A tensor's raw contents as ``bytes`` (for copying into shared memory and protobuf fields)."""
    buffer = tensor_buffer(datatype, data)
    return buffer if isinstance(buffer, bytes) else buffer.tobytes()
