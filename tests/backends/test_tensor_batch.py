"""Gathering requests into one batch and splitting outputs back, as tensor backends need."""

from __future__ import annotations

import numpy as np
import pytest

from tritonlite.backends.tensor_batch import batch_sizes, gather_inputs, scatter_outputs
from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferTensor, RequestedOutput


def req(rid: str, rows: np.ndarray, outputs: list[str] | None = None) -> InferRequest:
    request = InferRequest("m", "", rid, [InferTensor("X", "FP32", list(rows.shape), rows)])
    if outputs:
        request.outputs = [RequestedOutput(name) for name in outputs]
    return request


def test_round_trip_gives_each_request_its_rows_as_views():
    a, b = np.ones((1, 3), np.float32), np.arange(6, dtype=np.float32).reshape(2, 3)
    requests = [req("a", a), req("b", b, outputs=["Y"])]
    assert batch_sizes(requests) == [1, 2]
    gathered = gather_inputs(requests)["X"]
    assert gathered.shape == (3, 3)
    y = gathered * 2
    responses = scatter_outputs(requests, {"Y": y, "Z": y + 1}, {"Y": "FP32", "Z": "FP32"}, "1")
    np.testing.assert_array_equal(responses[0].outputs[0].data, a * 2)
    assert [t.name for t in responses[0].outputs] == ["Y", "Z"]
    assert [t.name for t in responses[1].outputs] == ["Y"]  # only what it asked for
    np.testing.assert_array_equal(responses[1].outputs[0].data, b * 2)
    assert responses[1].outputs[0].shape == [2, 3]
    assert np.shares_memory(responses[1].outputs[0].data, y)  # a view, not a copy


def test_single_request_passes_through_without_copy():
    x = np.zeros((2, 2), np.float32)
    assert gather_inputs([req("a", x)])["X"] is x


def test_wrong_output_batch_dimension_is_an_error():
    requests = [req("a", np.ones((1, 2), np.float32)), req("b", np.ones((1, 2), np.float32))]
    with pytest.raises(TritonError, match="batch dimension 3"):
        scatter_outputs(requests, {"Y": np.zeros((3, 2))}, {"Y": "FP64"}, "1")


def test_the_one_output_a_request_names_is_split_like_any_other():
    y = np.arange(6, dtype=np.float32).reshape(3, 2)
    requests = [req("a", np.ones((1, 2), np.float32), outputs=["Y"]), req("b", np.ones((2, 2), np.float32))]
    first, second = scatter_outputs(requests, {"Y": y}, {"Y": "FP32"}, "1")
    assert [(t.name, t.datatype, t.shape) for t in first.outputs] == [("Y", "FP32", [1, 2])]
    np.testing.assert_array_equal(second.outputs[0].data, y[1:])


# backends/framework.py's requested_outputs, tested here beside the split it feeds: a test file
# directly in tests/backends/ would put that folder on sys.path, where tests/backends/tensorrt/
# then imports as a namespace package named "tensorrt"


def asking(*names: str) -> InferRequest:
    request = InferRequest("m")
    request.outputs = [RequestedOutput(name) for name in names] or None
    return request


def test_a_batch_needs_the_union_of_what_its_requests_name_in_the_models_order():
    from tritonlite.backends.framework import requested_outputs

    names = ["A", "B", "C"]
    assert requested_outputs([asking("C"), asking("A")], names) == ["A", "C"]
    assert requested_outputs([asking("B"), asking("B")], names) == ["B"]
    assert requested_outputs([asking("A"), asking()], names) == names  # one that names none needs all
    assert requested_outputs([asking("C", "B", "A"), asking("A")], names) == names
