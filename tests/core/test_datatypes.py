"""Unit tests of tritonlite.core.datatypes: Triton's datatype tables and the BYTES wire format."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tritonlite.core import datatypes as dt
from tritonlite.core.errors import ErrorKind, TritonError

# wire name -> (numpy dtype holding the elements, element size, config enum name)
EXPECTED = {
    "BOOL": (np.bool_, 1, "TYPE_BOOL"),
    "UINT8": (np.uint8, 1, "TYPE_UINT8"),
    "UINT16": (np.uint16, 2, "TYPE_UINT16"),
    "UINT32": (np.uint32, 4, "TYPE_UINT32"),
    "UINT64": (np.uint64, 8, "TYPE_UINT64"),
    "INT8": (np.int8, 1, "TYPE_INT8"),
    "INT16": (np.int16, 2, "TYPE_INT16"),
    "INT32": (np.int32, 4, "TYPE_INT32"),
    "INT64": (np.int64, 8, "TYPE_INT64"),
    "FP16": (np.float16, 2, "TYPE_FP16"),
    "FP32": (np.float32, 4, "TYPE_FP32"),
    "FP64": (np.float64, 8, "TYPE_FP64"),
    "BF16": (np.uint16, 2, "TYPE_BF16"),
    "BYTES": (np.object_, 0, "TYPE_STRING"),
}


def test_datatypes_are_tritons_fourteen():
    assert set(dt.DATATYPES) == set(EXPECTED)
    assert len(dt.DATATYPES) == 14


@pytest.mark.parametrize("wire", sorted(EXPECTED))
def test_numpy_dtype_element_size_and_config_names(wire):
    numpy_type, size, config_name = EXPECTED[wire]
    assert dt.numpy_dtype(wire) == np.dtype(numpy_type)
    assert dt.ELEMENT_SIZE[wire] == size
    assert dt.DATATYPE_TO_CONFIG[wire] == config_name
    assert dt.CONFIG_TO_DATATYPE[config_name] == wire
    assert dt.is_valid_datatype(wire)


def test_config_tables_are_inverse_and_have_no_type_bytes():
    assert len(dt.CONFIG_TO_DATATYPE) == 14
    assert "TYPE_BYTES" not in dt.CONFIG_TO_DATATYPE
    assert {v: k for k, v in dt.DATATYPE_TO_CONFIG.items()} == dt.CONFIG_TO_DATATYPE


@pytest.mark.parametrize("wire", sorted(set(EXPECTED) - {"BF16", "BYTES"}))
def test_datatype_of_numeric_arrays(wire):
    array = np.zeros(3, dtype=EXPECTED[wire][0])
    assert dt.datatype_of(array) == wire


def test_datatype_of_uint16_is_uint16_not_bf16():
    assert dt.datatype_of(np.zeros(2, dtype=np.uint16)) == "UINT16"


@pytest.mark.parametrize(
    "array",
    [
        np.array([b"a", b"b"], dtype=np.object_),
        np.array([b"a", b"bc"]),  # numpy bytes_ (kind S)
        np.array(["a", "bc"]),  # numpy str_ (kind U)
    ],
)
def test_datatype_of_string_arrays_is_bytes(array):
    assert dt.datatype_of(array) == "BYTES"


def test_datatype_of_unsupported_dtype_is_invalid_arg():
    with pytest.raises(TritonError) as info:
        dt.datatype_of(np.zeros(2, dtype=np.complex64))
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == "unsupported numpy dtype 'complex64'"


@pytest.mark.parametrize("name", ["FLOAT32", "fp32", "", "TYPE_FP32", "STRING"])
def test_invalid_datatype(name):
    assert not dt.is_valid_datatype(name)
    with pytest.raises(TritonError) as info:
        dt.numpy_dtype(name)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == f"invalid datatype '{name}'"


@pytest.mark.parametrize(("shape", "count"), [([], 1), ([4], 4), ([2, 3], 6), ([2, 0, 5], 0), ((3, 1, 2), 6)])
def test_element_count(shape, count):
    assert dt.element_count(shape) == count


def test_serialize_bytes_is_length_prefixed_little_endian_in_c_order():
    array = np.array([[b"ab", b""], [b"xyz", b"\x00\xff"]], dtype=np.object_)
    encoded = dt.serialize_bytes(array)
    assert encoded == (
        struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 3) + b"xyz" + b"\x02\0\0\0\x00\xff"
    )


def test_serialize_bytes_encodes_str_as_utf8_and_other_objects_by_str():
    array = np.array(["Wörld", 7, b"raw"], dtype=np.object_)
    assert dt.serialize_bytes(array) == b"\x06\0\0\0W\xc3\xb6rld" + b"\x01\0\0\x007" + b"\x03\0\0\0raw"


def test_serialize_empty_array_is_empty():
    assert dt.serialize_bytes(np.empty([0], dtype=np.object_)) == b""


@pytest.mark.parametrize(
    "items",
    [
        [b"hello", b"W\xc3\xb6rld"],
        [b"", b"", b""],
        [b"\xff\xfe\x80", b"\x00embedded\x00nul", b""],  # not UTF-8 and NUL bytes survive
        [b"x" * 70000],  # longer than 16 bits of length
        [],
    ],
)
def test_bytes_round_trip(items):
    array = dt.bytes_array(items, [len(items)])
    encoded = dt.serialize_bytes(array)
    decoded = dt.deserialize_bytes(encoded, len(items))
    assert decoded == items
    assert all(type(item) is bytes for item in decoded)


def test_deserialize_accepts_memoryview_and_copies_elements():
    buffer = bytearray(b"\x02\0\0\0hi")
    decoded = dt.deserialize_bytes(memoryview(buffer))
    buffer[4:6] = b"XX"
    assert decoded == [b"hi"]


@pytest.mark.parametrize(
    ("buffer", "message"),
    [
        (b"\x05\0\0", "unexpected end of BYTES tensor data: incomplete length prefix"),
        (b"\x02\0\0\0ab\x01", "unexpected end of BYTES tensor data: incomplete length prefix"),
        (b"\x05\0\0\0abc", "unexpected end of BYTES tensor data: element longer than the buffer"),
        (b"\x01\0\0\0a\x02\0\0\0b", "unexpected end of BYTES tensor data: element longer than the buffer"),
    ],
)
def test_truncated_bytes_buffer_is_invalid_arg(buffer, message):
    with pytest.raises(TritonError) as info:
        dt.deserialize_bytes(buffer)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == message


def test_deserialize_with_wrong_count_is_invalid_arg():
    with pytest.raises(TritonError) as info:
        dt.deserialize_bytes(b"\x01\0\0\0a\x01\0\0\0b", count=3)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == "expected 3 string elements, got 2"


def test_bytes_array_has_shape_and_object_dtype():
    array = dt.bytes_array([b"a", b"b", b"c", b"d", b"e", b"f"], [2, 3])
    assert array.dtype == np.object_
    assert array.shape == (2, 3)
    assert array[1, 0] == b"d"


def test_bytes_array_keeps_bytes_of_equal_length_as_objects():
    # np.array([...]) would make a fixed-width S array; bytes_array must not
    array = dt.bytes_array([b"ab", b"cd"], [2])
    assert array.dtype == np.object_
    assert list(array) == [b"ab", b"cd"]


def test_tensor_from_bytes_numeric_is_a_view_with_shape():
    values = np.arange(6, dtype=np.float32)
    raw = values.tobytes()
    array = dt.tensor_from_bytes(raw, "FP32", [2, 3], 6)
    assert array.dtype == np.float32
    assert array.shape == (2, 3)
    np.testing.assert_array_equal(array.reshape(-1), values)


def test_tensor_from_bytes_bf16_is_uint16_words():
    array = dt.tensor_from_bytes(b"\x80\x3f\x00\x40", "BF16", [2], 2)
    assert array.dtype == np.uint16
    assert list(array) == [0x3F80, 0x4000]


@pytest.mark.parametrize(("raw", "count"), [(b"\0" * 12, 4), (b"\0" * 20, 4), (b"\0" * 3, 1), (b"\0" * 4, 0)])
def test_tensor_from_bytes_wrong_size_stays_uint8_for_validation(raw, count):
    array = dt.tensor_from_bytes(raw, "FP32", [count], count)
    assert array.dtype == np.uint8
    assert array.shape == (len(raw),)
    assert array.nbytes == len(raw)


def test_tensor_from_bytes_bytes_tensor():
    raw = b"\x01\0\0\0a\x00\0\0\0\x02\0\0\0\xff\x00\x01\0\0\0z"
    array = dt.tensor_from_bytes(raw, "BYTES", [2, 2], 4)
    assert array.dtype == np.object_
    assert array.tolist() == [[b"a", b""], [b"\xff\x00", b"z"]]


def test_tensor_from_bytes_bytes_count_mismatch_is_invalid_arg():
    with pytest.raises(TritonError) as info:
        dt.tensor_from_bytes(b"\x01\0\0\0a", "BYTES", [2], 2)
    assert info.value.kind is ErrorKind.INVALID_ARG


def test_tensor_buffer_views_arrays_and_copies_what_cannot_be_viewed(monkeypatch):
    from tritonlite.core import datatypes

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert datatypes.tensor_buffer("FP32", array) is array  # already C-contiguous: no copy
    transposed = datatypes.tensor_buffer("FP32", array.T)
    assert isinstance(transposed, np.ndarray) and transposed.flags.c_contiguous
    assert bytes(memoryview(transposed)) == array.T.tobytes()
    # a dtype that cannot export a buffer (as ml_dtypes' bfloat16 may not) is copied with tobytes
    monkeypatch.setattr(datatypes.np, "ascontiguousarray", NoBufferArray)
    assert datatypes.tensor_buffer("FP32", array) == array.tobytes()


class NoBufferArray:
    """Array-like without the buffer protocol: memoryview() raises TypeError, as for such dtypes."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def tobytes(self) -> bytes:
        return self.data.tobytes()
