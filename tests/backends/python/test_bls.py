"""Unit tests of backends/python/bls.py: a model's ``exec`` runs through the server's infer callables."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.backends.python.bls import Bls, core_request
from tritonlite.core.errors import not_found
from tritonlite.core.types import InferResponse, InferTensor


def pb_request(**fields) -> pb_utils.InferenceRequest:
    inputs = [pb_utils.Tensor("IN", np.array([1, 2], dtype=np.int32))]
    return pb_utils.InferenceRequest(model_name="double", inputs=inputs, requested_output_names=["OUT"], **fields)


def doubled(request) -> InferResponse:
    data = request.inputs[0].data * 2
    return InferResponse(request.model_name, "1", request.id, [InferTensor("OUT", "INT32", list(data.shape), data)])


def test_core_request_carries_what_the_model_set():
    request = core_request(pb_request(request_id="r", correlation_id=7, model_version=2, parameters={"a": 1}))
    assert (request.model_name, request.model_version, request.id) == ("double", "2", "r")
    assert request.inputs[0].datatype == "INT32" and request.inputs[0].shape == [2]
    assert [o.name for o in request.outputs] == ["OUT"]
    assert request.parameters == {"a": 1} and request.correlation_id == 7
    assert core_request(pb_request()).model_version == ""  # -1: the latest version


def call_from_a_thread(make_bls, request: pb_utils.InferenceRequest, decoupled: bool = False):
    """``exec`` as a model makes it: on its instance thread while the loop runs."""

    async def go():
        bls = make_bls(asyncio.get_running_loop())

        def call():
            answer = bls(request, decoupled)
            return list(answer) if decoupled else answer

        return await asyncio.to_thread(call)

    return asyncio.run(go())


async def infer(request):
    if request.model_name == "missing":
        raise not_found("Request for unknown model: 'missing' is not found")
    return doubled(request)


def test_exec_runs_infer_on_the_loop():
    response = call_from_a_thread(lambda loop: Bls(infer, None, loop), pb_request())
    assert pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy().tolist() == [2, 4]
    missing = pb_utils.InferenceRequest(model_name="missing", inputs=[])
    failed = call_from_a_thread(lambda loop: Bls(infer, None, loop), missing)
    assert failed.has_error() and "'missing' is not found" in failed.error().message()


def test_install_makes_it_the_hook_of_exec(monkeypatch):
    monkeypatch.setattr(pb_utils, "_bls_executor", None)
    bls = Bls(infer, None, asyncio.new_event_loop())
    bls.install()
    assert pb_utils._bls_executor is bls
    bls.loop.close()


@pytest.mark.parametrize("ending", ["final", "empty final", "error"])
def test_decoupled_exec_streams_responses(ending):
    async def infer_stream(request):
        yield doubled(request), False
        if ending == "final":
            yield doubled(request), True
        elif ending == "empty final":
            yield None, True
        else:
            raise not_found("gone")

    responses = call_from_a_thread(lambda loop: Bls(None, infer_stream, loop), pb_request(), decoupled=True)
    assert len(responses) == 2
    assert pb_utils.get_output_tensor_by_name(responses[0], "OUT").as_numpy().tolist() == [2, 4]
    if ending == "empty final":
        assert responses[1].output_tensors() == []
    elif ending == "error":
        assert responses[1].has_error() and responses[1].error().message() == "gone"
