"""Unit tests of tritonlite.core.classification: Triton's top-k "value:index[:label]" strings."""

from __future__ import annotations

import numpy as np
import pytest

from tritonlite.core.classification import classify
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferTensor

LABELS = ["cat", "dog", "bird", "fish"]
SCORES = np.array([0.1, 0.7, 0.05, 0.15], dtype=np.float32)


def scores(data: np.ndarray, datatype: str = "FP32") -> InferTensor:
    return InferTensor("OUTPUT0", datatype, list(data.shape), data)


def test_all_classes_sorted_with_labels():
    # the labels model of tests/data/repository as Triton 2.51 answered it (classification: 4)
    result = classify(scores(SCORES), 4, LABELS, batched=False)
    assert result.name == "OUTPUT0"
    assert result.datatype == "BYTES"
    assert result.shape == [4]
    assert result.data.tolist() == [b"0.700000:1:dog", b"0.150000:3:fish", b"0.100000:0:cat", b"0.050000:2:bird"]


def test_top_two_of_scaled_scores():
    result = classify(scores(SCORES * np.float32(2.0)), 2, LABELS, batched=False)
    assert result.shape == [2]
    assert result.data.tolist() == [b"1.400000:1:dog", b"0.300000:3:fish"]


def test_without_labels_has_value_and_index_only():
    result = classify(scores(SCORES), 1, None, batched=False)
    assert result.data.tolist() == [b"0.700000:1"]


def test_index_beyond_the_labels_has_no_label():
    result = classify(scores(SCORES), 4, ["cat", "dog"], batched=False)
    assert result.data.tolist() == [b"0.700000:1:dog", b"0.150000:3", b"0.100000:0:cat", b"0.050000:2"]


def test_class_count_larger_than_the_output_is_clamped():
    result = classify(scores(SCORES), 10, LABELS, batched=False)
    assert result.shape == [4]
    assert len(result.data) == 4


def test_ties_keep_index_order():
    result = classify(scores(np.array([0.5, 0.9, 0.5, 0.5], dtype=np.float32)), 4, None, batched=False)
    assert result.data.tolist() == [b"0.900000:1", b"0.500000:0", b"0.500000:2", b"0.500000:3"]


def test_integer_outputs_format_as_integers():
    result = classify(scores(np.array([3, -1, 7], dtype=np.int32), "INT32"), 2, None, batched=False)
    assert result.data.tolist() == [b"7:2", b"3:0"]


def test_negative_values_sort_by_value_not_magnitude():
    result = classify(scores(np.array([-5.0, -0.5, -2.0], dtype=np.float64), "FP64"), 3, None, batched=False)
    assert result.data.tolist() == [b"-0.500000:1", b"-2.000000:2", b"-5.000000:0"]


def test_batched_rows_are_classified_separately():
    data = np.array([[0.1, 0.7, 0.05, 0.15], [0.9, 0.0, 0.05, 0.05]], dtype=np.float32)
    result = classify(scores(data), 2, LABELS, batched=True)
    assert result.shape == [2, 2]
    assert result.data.shape == (2, 2)
    assert result.data.tolist() == [
        [b"0.700000:1:dog", b"0.150000:3:fish"],
        [b"0.900000:0:cat", b"0.050000:2:bird"],
    ]


def test_batched_rows_with_more_dims_are_flattened_per_row():
    data = np.array([[[1.0, 2.0], [3.0, 0.0]]], dtype=np.float32)  # [1, 2, 2]
    result = classify(scores(data), 1, None, batched=True)
    assert result.shape == [1, 1]
    assert result.data.tolist() == [[b"3.000000:2"]]


def test_unbatched_multi_dim_output_is_one_row():
    data = np.array([[1.0, 4.0], [3.0, 2.0]], dtype=np.float32)
    result = classify(scores(data), 2, None, batched=False)
    assert result.shape == [2]
    assert result.data.tolist() == [b"4.000000:1", b"3.000000:2"]


def test_bytes_output_cannot_be_classified():
    data = np.array([b"x"], dtype=np.object_)
    with pytest.raises(TritonError) as info:
        classify(InferTensor("UPPER", "BYTES", [1], data), 1, None, batched=False)
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == "class result not available for output 'UPPER' due to unsupported type 'BYTES'"


def test_integer_outputs_print_integer_values_as_triton():
    # Triton 2.51 answered "1:0" for class_count 1 on an INT32 output holding [1]
    tensor = InferTensor("LENGTH", "INT32", [1], np.array([1], dtype=np.int32))
    result = classify(tensor, 1, None, batched=False)
    assert list(result.data) == [b"1:0"]
