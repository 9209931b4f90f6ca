"""head_cache: a repeated ModelInfer head is decoded once, and the requests and answers it gives are
exactly what the full decode and protobuf's encoding give."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tritonlite.core.types import InferResponse, InferTensor
from tritonlite.frontends.grpc.codec import decode_request, encode_response
from tritonlite.frontends.grpc.head_cache import DecodedHead, HeadCache
from tritonlite.frontends.grpc.wire import join_serialized, split_raw
from tritonlite.protocol import grpc_service_pb2 as pb


def _message(**fields) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="add_sub", **fields)
    for name in ("INPUT0", "INPUT1"):
        message.inputs.add(name=name, datatype="FP32", shape=[4])
        message.raw_input_contents.append(np.arange(4, dtype=np.float32).tobytes())
    return message


def _entry(message: pb.ModelInferRequest) -> tuple[bytes, DecodedHead | None]:
    head, raw = split_raw(message.SerializeToString())
    request = decode_request(pb.ModelInferRequest.FromString(head), None, raw)
    return head, DecodedHead.of(pb.ModelInferRequest.FromString(head), request, len(raw))


def test_a_plain_head_builds_what_the_full_decode_gives():
    message = _message()
    message.outputs.add(name="OUTPUT1")
    head, entry = _entry(message)
    assert entry is not None
    data = message.SerializeToString()
    again_head, raw = split_raw(data)
    assert again_head == head
    built = entry.build(raw)
    decoded = decode_request(pb.ModelInferRequest.FromString(head), None, raw)
    assert built.validation_key is entry
    assert (built.model_name, built.model_version, built.id) == (decoded.model_name, decoded.model_version, "")
    assert [(t.name, t.datatype, t.shape) for t in built.inputs] == [
        (t.name, t.datatype, t.shape) for t in decoded.inputs
    ]
    for ours, theirs in zip(built.inputs, decoded.inputs, strict=True):
        assert np.array_equal(ours.data, theirs.data) and ours.data.dtype == theirs.data.dtype
    assert [o.name for o in built.outputs] == ["OUTPUT1"]


def test_tensor_bytes_of_another_size_are_decoded_afresh():
    head, entry = _entry(_message())
    message = _message()
    message.raw_input_contents[1] = b"\x00" * 12
    _, raw = split_raw(message.SerializeToString())
    assert entry.build(raw) is None
    assert entry.build(raw[:1]) is None


def _with_id(message: pb.ModelInferRequest) -> None:
    message.id = "7"


def _with_priority(message: pb.ModelInferRequest) -> None:
    message.parameters["priority"].int64_param = 1


def _with_classification(message: pb.ModelInferRequest) -> None:
    message.outputs.add(name="OUTPUT0").parameters["classification"].int64_param = 2


def _with_plain_output(message: pb.ModelInferRequest) -> None:
    message.outputs.add(name="OUTPUT0")


@pytest.mark.parametrize(
    ("change", "kept"),
    [
        (_with_id, False),
        (_with_priority, False),
        (_with_classification, False),
        (_with_plain_output, True),
    ],
)
def test_only_plain_heads_are_kept(change, kept):
    message = _message()
    change(message)
    _, entry = _entry(message)
    assert (entry is not None) is kept


def test_a_head_with_model_parameters_carries_them_into_each_request():
    message = _message()
    message.parameters["triton_enable_empty_final_response"].bool_param = True  # what tritonclient sends
    message.parameters["temperature"].double_param = 0.5
    _, entry = _entry(message)
    _, raw = split_raw(message.SerializeToString())
    first, second = entry.build(raw), entry.build(raw)
    assert first.parameters == {"triton_enable_empty_final_response": True, "temperature": 0.5}
    first.parameters["temperature"] = 9.0  # a model that changes its request's parameters changes only its own
    assert second.parameters["temperature"] == 0.5


def test_shared_memory_inputs_are_not_kept():
    message = _message()
    del message.raw_input_contents[0]
    region = message.inputs[0].parameters
    region["shared_memory_region"].string_param = "r"
    region["shared_memory_byte_size"].int64_param = 16
    head, raw = split_raw(message.SerializeToString())
    parsed = pb.ModelInferRequest.FromString(head)
    as_if_read = decode_request(_message(), None)  # what reading the region would give
    assert DecodedHead.of(parsed, as_if_read, len(raw)) is None


def test_bytes_inputs_and_typed_contents_are_not_kept():
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    message.raw_input_contents.append(b"\x02\x00\x00\x00hi")
    head, raw = split_raw(message.SerializeToString())
    assert DecodedHead.of(pb.ModelInferRequest.FromString(head), decode_request(message, None, raw), len(raw)) is None
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="X", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1.0, 2.0])
    head, raw = split_raw(typed.SerializeToString())
    assert raw == []
    assert DecodedHead.of(typed, decode_request(typed, None, raw), len(raw)) is None


def _response(shape: list[int], version: str = "1") -> InferResponse:
    outputs = [InferTensor("OUTPUT0", "FP32", shape, np.ones(shape, np.float32))]
    return InferResponse("add_sub", version, "", outputs, None)


def test_answers_are_the_bytes_protobuf_gives_and_follow_layout_changes():
    _, entry = _entry(_message())
    for response in (_response([4]), _response([4]), _response([2, 2]), _response([2, 2], version="2")):
        message = entry.encode(response)
        ours = join_serialized(message, entry.raw_outputs(response))
        assert ours == encode_response(response).SerializeToString()
        assert pb.ModelInferResponse.FromString(ours).model_version == response.model_version


def test_answers_with_parameters_or_bytes_are_left_to_the_full_encoding():
    _, entry = _entry(_message())
    with_parameters = _response([4])
    with_parameters.parameters = {"p": 1}
    assert entry.encode(with_parameters) is None
    text = InferResponse("add_sub", "1", "", [InferTensor("T", "BYTES", [1], np.array([b"x"], dtype=object))], None)
    assert entry.encode(text) is None


def test_the_cache_decodes_once_per_head_and_starts_over_when_full():
    cache = HeadCache(limit=2)
    head, raw = split_raw(_message().SerializeToString())
    first, entry = cache.decode(head, raw)
    again, same = cache.decode(head, raw)
    assert entry is not None and same is entry and again.validation_key is entry
    assert first.validation_key is None  # the first was decoded in full
    for name in ("b", "c"):
        other_head, other_raw = split_raw(_message(id="").SerializeToString().replace(b"add_sub", name.encode() * 7))
        cache.decode(other_head, other_raw)
    assert len(cache) == 1  # full at the third head: started over
    with_id = _message(id="7")
    _, kept = cache.decode(*split_raw(with_id.SerializeToString()))
    assert kept is None and len(cache) == 1


# --------------------------------------------------------------------------- through a server (conftest.server)


def _inputs(values: np.ndarray, second: np.ndarray | None = None) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array in (("INPUT0", values), ("INPUT1", values if second is None else second)):
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_repeated_requests_answer_their_own_tensors(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    for step in range(5):
        a = np.arange(4, dtype=np.float32) + step
        b = np.full(4, float(step), dtype=np.float32)
        result = client.infer("add_sub", _inputs(a, b))
        assert np.array_equal(result.as_numpy("OUTPUT0"), a + b)
        assert np.array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_a_head_that_failed_validation_fails_every_time(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    wrong = np.arange(4, dtype=np.int32)
    messages = []
    for _ in range(3):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("add_sub", _inputs(wrong))
        messages.append((refused.value.status(), refused.value.message()))
    assert messages[0][0] == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert "data-type is 'INT32', but model 'add_sub' expects 'FP32'" in messages[0][1]
    assert messages == [messages[0]] * 3


def test_a_known_head_with_short_tensor_bytes_gets_the_size_error(server):
    channel = grpc.insecure_channel(server.grpc)
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    good = _message()
    for index in range(2):
        good.raw_input_contents[index] = np.ones(4, np.float32).tobytes()
    for _ in range(2):
        answer = pb.ModelInferResponse.FromString(infer(good.SerializeToString()))
        assert np.array_equal(np.frombuffer(answer.raw_output_contents[0], np.float32), np.full(4, 2.0))
    short = pb.ModelInferRequest()
    short.CopyFrom(good)
    short.raw_input_contents[1] = b"\x00" * 8
    with pytest.raises(grpc.RpcError) as refused:
        infer(short.SerializeToString())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "input byte size mismatch for input 'INPUT1' for model 'add_sub'. Expected 16, got 8" in refused.value.details()
    )
    channel.close()
