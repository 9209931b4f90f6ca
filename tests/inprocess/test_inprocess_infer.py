"""The in-process API's inference: add_sub through Model.infer, outputs read with numpy and DLPack,
BYTES, errors as exception classes, decoupled streaming, async_infer, cancellation and Ctrl-C."""

from __future__ import annotations

import _thread
import asyncio
import queue
import threading

import numpy as np
import pytest
from inprocess_models import build_repository

import tritonlite

A = np.array([1, 2, 3, 4], dtype=np.float32)
B = np.array([10, 20, 30, 40], dtype=np.float32)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return build_repository(tmp_path_factory.mktemp("inprocess_infer"))


@pytest.fixture(scope="module")
def server(repository):
    running = tritonlite.Server(model_repository=repository).start(wait_until_ready=True)
    yield running
    running.stop()


def test_add_sub_outputs_read_with_numpy_and_dlpack(server):
    responses = list(server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B}, request_id="r1"))
    assert len(responses) == 1
    response = responses[0]
    assert response.final and response.error is None
    assert response.request_id == "r1"
    assert (response.model.name, response.model.version) == ("add_sub", 1)
    assert set(response.outputs) == {"OUTPUT0", "OUTPUT1"}
    out0 = response.outputs["OUTPUT0"]
    assert out0.data_type == tritonlite.DataType.FP32 and out0.shape == [4]
    assert out0.memory_type == tritonlite.MemoryType.CPU
    np.testing.assert_array_equal(np.asarray(out0), A + B)
    np.testing.assert_array_equal(np.from_dlpack(response.outputs["OUTPUT1"]), A - B)
    assert out0.__dlpack_device__() == (1, 0)  # kDLCPU


def test_torch_reads_an_output_through_dlpack(server):
    torch = pytest.importorskip("torch")
    response = next(server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B}))
    tensor = torch.from_dlpack(response.outputs["OUTPUT0"])
    assert tensor.tolist() == (A + B).tolist()
    # and a torch tensor is an input, read through DLPack
    response = next(server.model("add_sub").infer(inputs={"INPUT0": torch.ones(4), "INPUT1": torch.ones(4)}))
    assert np.asarray(response.outputs["OUTPUT0"]).tolist() == [2, 2, 2, 2]


def test_inputs_as_lists_tensors_and_a_request_object(server):
    model = server.model("add_sub")
    request = model.create_request(inputs={"INPUT0": [1.0, 2.0, 3.0, 4.0]})
    request.inputs["INPUT1"] = tritonlite.Tensor.from_dlpack(B)
    # a list of Python floats is FP64: refused as the wire refuses a wrong data type
    wrong_type = "data-type is 'FP64', but model 'add_sub' expects 'FP32'"
    with pytest.raises(tritonlite.InvalidArgumentError, match=wrong_type):
        list(model.infer(request))
    request.inputs["INPUT0"] = np.array(request.inputs["INPUT0"], dtype=np.float32)
    (response,) = model.infer(request)
    np.testing.assert_array_equal(np.asarray(response.outputs["OUTPUT0"]), A + B)


def test_the_callers_input_array_is_not_written(server):
    a = A.copy()
    next(server.model("add_sub").infer(inputs={"INPUT0": a, "INPUT1": B}))
    assert a.flags.writeable
    np.testing.assert_array_equal(a, A)


def test_bytes_tensors(server):
    (response,) = server.model("string_upper").infer(inputs={"TEXT": np.array(["ab", "héllo"], dtype=object)})
    upper = response.outputs["UPPER"]
    assert upper.data_type == tritonlite.DataType.BYTES
    assert upper.to_bytes_array().tolist() == [b"AB", "HÉLLO".encode()]
    assert upper.to_string_array().tolist() == ["AB", "HÉLLO"]
    assert np.asarray(response.outputs["LENGTH"]).tolist() == [2, 6]
    with pytest.raises(tritonlite.UnsupportedError):
        np.from_dlpack(upper)
    # numpy str and bytes arrays are BYTES too
    (response,) = server.model("string_upper").infer(inputs={"TEXT": np.array([b"x", b"yz"])})
    assert response.outputs["UPPER"].to_bytes_array().tolist() == [b"X", b"YZ"]


def test_fp16(server):
    x = np.array([0.5, 1.5], dtype=np.float16)
    (response,) = server.model("identity_fp16").infer(inputs={"INPUT0": x})
    output = next(iter(response.outputs.values()))
    assert output.data_type == tritonlite.DataType.FP16
    np.testing.assert_array_equal(np.from_dlpack(output), x)


def test_unknown_model_is_not_found_when_infer_is_called(server):
    with pytest.raises(tritonlite.NotFoundError) as info:
        server.model("no_such_model").infer(inputs={"INPUT0": A})
    assert str(info.value) == "Request for unknown model: 'no_such_model' is not found"
    assert isinstance(info.value, tritonlite.TritonError)
    with pytest.raises(tritonlite.NotFoundError, match="'add_sub' version 7 is not found"):
        server.model("add_sub", 7).infer(inputs={"INPUT0": A, "INPUT1": B})


def test_invalid_input_raises_from_the_iterator(server):
    responses = server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": np.ones(3, np.float32)})
    wrong_shape = r"unexpected shape for input 'INPUT1'.*Expected \[4\], got \[3\]"
    with pytest.raises(tritonlite.InvalidArgumentError, match=wrong_shape):
        next(responses)
    with pytest.raises(StopIteration):
        next(responses)
    with pytest.raises(tritonlite.InvalidArgumentError, match="Input type .* not supported"):
        server.model("add_sub").infer(inputs={"INPUT0": object(), "INPUT1": B})
    with pytest.raises(tritonlite.InvalidArgumentError, match="Unsupported Request Parameter type"):
        server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B}, parameters={"p": [1]})


def test_model_error_raised_or_returned(server):
    with pytest.raises(tritonlite.InternalError, match="execute failed on purpose"):
        list(server.model("exec_fails").infer(inputs={"INPUT0": A}))
    (response,) = server.model("exec_fails").infer(inputs={"INPUT0": A}, raise_on_error=False)
    assert response.final
    assert isinstance(response.error, tritonlite.InternalError)
    assert "execute failed on purpose" in response.error.message


def test_decoupled_responses_then_the_final_flag(server):
    responses = list(server.model("repeat_decoupled").infer(inputs={"IN": np.array([5, 6, 7], np.int32)}))
    assert [np.asarray(r.outputs["OUT"]).tolist() for r in responses[:3]] == [[5], [6], [7]]
    assert [r.final for r in responses] == [False, False, False, True]
    assert responses[3].outputs == {}
    (only,) = server.model("repeat_decoupled").infer(inputs={"IN": np.array([], np.int32)})
    assert only.final and only.outputs == {}


def test_decoupled_responses_arrive_as_sent(server, repository):
    """The first response is read while the model still waits to send the second (a model kept
    waiting to the end would answer "gate never opened" instead)."""
    responses = server.model("gated").infer(inputs={"IN": np.array([1], np.int32)})
    try:
        first = next(responses)
        assert np.asarray(first.outputs["OUT"]).tolist() == [0] and not first.final
    finally:
        (repository / "gated" / "gate1").touch()
    assert [np.asarray(r.outputs["OUT"]).tolist() for r in responses if not r.final] == [[1]]


def test_response_queue_receives_each_response(server):
    responses: queue.SimpleQueue = queue.SimpleQueue()
    request = server.model("repeat_decoupled").create_request(
        inputs={"IN": np.array([1, 2], np.int32)}, response_queue=responses
    )
    read = list(server.model("repeat_decoupled").infer(request))
    assert [responses.get_nowait() for _ in range(3)] == read
    with pytest.raises(tritonlite.InvalidArgumentError, match="queue.SimpleQueue must be used"):
        server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B}, response_queue=asyncio.Queue())


def test_cancel_a_stream(server, repository):
    responses = server.model("gated").infer(inputs={"IN": np.array([2], np.int32)})
    assert not next(responses).final
    responses.cancel()
    try:
        with pytest.raises(tritonlite.CancelledError, match="request cancelled"):
            next(responses)
    finally:
        (repository / "gated" / "gate2").touch()  # the model's execute ends


def test_ctrl_c_while_waiting_withdraws_the_request(server, repository):
    responses = server.model("gated").infer(inputs={"IN": np.array([3], np.int32)})
    next(responses)
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(responses)  # the model waits for the gate: only Ctrl-C ends this wait
    finally:
        timer.cancel()
        (repository / "gated" / "gate3").touch()
    with pytest.raises(tritonlite.CancelledError):
        next(responses)
    # the server still answers
    assert next(server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B})).final


def test_bls_call_from_a_model(server):
    (response,) = server.model("bls_double").infer(inputs={"INPUT0": A})
    np.testing.assert_array_equal(np.asarray(response.outputs["OUTPUT0"]), 2 * A)


def test_async_infer_on_the_callers_loop(server):
    async def main():
        outputs = []
        async for response in server.model("add_sub").async_infer(inputs={"INPUT0": A, "INPUT1": B}):
            outputs.append(np.asarray(response.outputs["OUTPUT1"]).tolist())
        counting = server.model("repeat_decoupled").async_infer(inputs={"IN": np.arange(3, dtype=np.int32)})
        stream = [r.final async for r in counting]

        async def one(i: int) -> float:
            x = np.full(4, i, np.float32)
            async for response in server.model("add_sub").async_infer(inputs={"INPUT0": x, "INPUT1": x}):
                return float(np.asarray(response.outputs["OUTPUT0"])[0])
            return -1.0

        many = await asyncio.gather(*(one(i) for i in range(20)))
        with pytest.raises(tritonlite.NotFoundError):
            server.model("nope").async_infer(inputs={"INPUT0": A})
        with pytest.raises(tritonlite.InternalError, match="execute failed on purpose"):
            async for _ in server.model("exec_fails").async_infer(inputs={"INPUT0": A}):
                pass
        return outputs, stream, many

    outputs, stream, many = asyncio.run(main())
    assert outputs == [(A - B).tolist()]
    assert stream == [False, False, False, True]
    assert many == [2.0 * i for i in range(20)]


def test_async_cancel_withdraws_the_request(server, repository):
    async def main():
        responses = server.model("gated").async_infer(inputs={"IN": np.array([4], np.int32)})
        first = await responses.__anext__()
        waiting = asyncio.ensure_future(responses.__anext__())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        with pytest.raises(tritonlite.CancelledError):
            await responses.__anext__()
        return first

    try:
        assert not asyncio.run(main()).final
    finally:
        (repository / "gated" / "gate4").touch()


def test_blocking_api_inside_a_running_event_loop(server):
    async def main():
        (response,) = server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": B})
        return np.asarray(response.outputs["OUTPUT0"]).tolist(), server.model("add_sub").ready()

    assert asyncio.run(main()) == ((A + B).tolist(), True)


def test_model_queries(server):
    model = server.model("add_sub")
    assert model.ready()
    assert model.metadata()["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": [4]}
    assert model.config()["name"] == "add_sub"
    assert model.statistics()["model_stats"][0]["name"] == "add_sub"
    assert model.transaction_properties() == tritonlite.ModelTxnPropertyFlag.ONE_TO_ONE
    assert server.model("repeat_decoupled").transaction_properties() == tritonlite.ModelTxnPropertyFlag.DECOUPLED
    assert model.batch_properties() == tritonlite.ModelBatchFlag.UNKNOWN
    assert not server.model("no_such_model").ready()
    with pytest.raises(tritonlite.NotFoundError, match="Request for unknown model: 'no_such_model' is not found"):
        server.model("no_such_model").metadata()
