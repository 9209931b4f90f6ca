"""The outputs a batch of requests needs from a framework (backends/framework.py)."""

from __future__ import annotations

from tritonlite.backends.framework import requested_outputs
from tritonlite.core.types import InferRequest, RequestedOutput


def asking(*names: str) -> InferRequest:
    request = InferRequest("m")
    request.outputs = [RequestedOutput(name) for name in names] or None
    return request


def test_a_batch_needs_the_union_of_what_its_requests_name_in_the_models_order():
    names = ["A", "B", "C"]
    assert requested_outputs([asking("C"), asking("A")], names) == ["A", "C"]
    assert requested_outputs([asking("B"), asking("B")], names) == ["B"]


def test_a_request_that_names_none_or_all_needs_every_output():
    names = ["A", "B"]
    assert requested_outputs([asking("A"), asking()], names) == ["A", "B"]
    assert requested_outputs([asking("B", "A"), asking("A")], names) == ["A", "B"]
