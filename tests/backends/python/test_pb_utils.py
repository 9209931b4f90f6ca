"""Unit tests of tritonlite's triton_python_backend_utils (Triton's python-backend model API)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tritonlite.backends.python import triton_python_backend_utils as pb_utils

# --- data types -------------------------------------------------------------------------------

CODES = {
    "TYPE_INVALID": 0,
    "TYPE_BOOL": 1,
    "TYPE_UINT8": 2,
    "TYPE_UINT16": 3,
    "TYPE_UINT32": 4,
    "TYPE_UINT64": 5,
    "TYPE_INT8": 6,
    "TYPE_INT16": 7,
    "TYPE_INT32": 8,
    "TYPE_INT64": 9,
    "TYPE_FP16": 10,
    "TYPE_FP32": 11,
    "TYPE_FP64": 12,
    "TYPE_STRING": 13,
    "TYPE_BF16": 14,
}

NUMPY = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


@pytest.mark.parametrize("name", sorted(CODES))
def test_type_codes_are_the_config_enum(name):
    from tritonlite.protocol import model_config_pb2 as mc

    assert getattr(pb_utils, name) == CODES[name] == mc.DataType.Value(name)


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_triton_string_to_numpy(name):
    assert np.dtype(pb_utils.triton_string_to_numpy(name)) == np.dtype(NUMPY[name])


def test_triton_string_to_numpy_unknown_raises():
    with pytest.raises(KeyError):
        pb_utils.triton_string_to_numpy("TYPE_NOPE")


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_numpy_and_triton_types_round_trip(name):
    code = CODES[name]
    assert np.dtype(pb_utils.triton_to_numpy_type(code)) == np.dtype(NUMPY[name])
    assert pb_utils.numpy_to_triton_type(NUMPY[name]) == code


@pytest.mark.parametrize("numpy_type", [np.bytes_, object, bool])
def test_numpy_to_triton_type_of_python_and_string_types(numpy_type):
    expected = pb_utils.TYPE_BOOL if numpy_type is bool else pb_utils.TYPE_STRING
    assert pb_utils.numpy_to_triton_type(numpy_type) == expected


def test_unmapped_types():
    assert pb_utils.numpy_to_triton_type(np.complex128) is None
    assert pb_utils.triton_to_numpy_type(pb_utils.TYPE_BF16) is None
    assert pb_utils.triton_to_numpy_type(99) is None


# --- BYTES serialization ------------------------------------------------------------------------


def test_serialize_byte_tensor_layout():
    array = np.array([[b"ab", "é"], [b"", 5]], dtype=np.object_)
    serialized = pb_utils.serialize_byte_tensor(array)
    assert serialized.dtype == np.object_
    assert serialized.shape == ()
    assert serialized.item() == b"\x02\0\0\0ab" + b"\x02\0\0\0\xc3\xa9" + b"\0\0\0\0" + b"\x01\0\0\x005"


def test_serialize_empty_tensor():
    assert pb_utils.serialize_byte_tensor(np.array([], dtype=np.object_)).size == 0


@pytest.mark.parametrize(
    "items",
    [
        [b"hello", b"world"],
        [b"", b"x", b""],
        [b"\xff\x00\xfe", b"W\xc3\xb6rld"],
    ],
)
def test_serialize_deserialize_round_trip(items):
    array = np.array(items, dtype=np.object_)
    serialized = pb_utils.serialize_byte_tensor(array)
    restored = pb_utils.deserialize_bytes_tensor(serialized.item())
    assert restored.dtype == np.object_
    assert restored.tolist() == items


def test_serialize_fixed_width_bytes_array():
    array = np.array([b"a", b"bcd"], dtype=np.bytes_)
    restored = pb_utils.deserialize_bytes_tensor(pb_utils.serialize_byte_tensor(array).item())
    assert restored.tolist() == [b"a", b"bcd"]


def test_deserialize_accepts_any_buffer():
    encoded = struct.pack("<I", 3) + b"abc"
    assert pb_utils.deserialize_bytes_tensor(bytearray(encoded)).tolist() == [b"abc"]
    assert pb_utils.deserialize_bytes_tensor(memoryview(encoded)).tolist() == [b"abc"]


# --- errors ----------------------------------------------------------------------------------


def test_triton_error_codes_are_tritonserver_error_codes():
    codes = ["UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED", "ALREADY_EXISTS"]
    assert [getattr(pb_utils.TritonError, c) for c in codes] == list(range(7))
    assert pb_utils.TritonError.CANCELLED == 7


def test_triton_error_defaults_to_internal():
    error = pb_utils.TritonError("went wrong")
    assert error.message() == "went wrong"
    assert error.code() == pb_utils.TritonError.INTERNAL


def test_triton_error_with_code():
    error = pb_utils.TritonError("bad input", pb_utils.TritonError.INVALID_ARG)
    assert error.code() == 3
    assert not isinstance(error, Exception)  # returned in a response, not raised


def test_triton_model_exception_is_an_exception():
    assert issubclass(pb_utils.TritonModelException, Exception)


# --- tensors ---------------------------------------------------------------------------------


def test_tensor_wraps_the_array_without_copy():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = pb_utils.Tensor("OUTPUT0", array)
    assert tensor.name() == "OUTPUT0"
    assert tensor.as_numpy() is array
    assert tensor.shape() == [2, 3]
    assert tensor.triton_dtype() == pb_utils.TYPE_FP32
    assert tensor.is_cpu()


def test_tensor_of_bytes_is_type_string():
    tensor = pb_utils.Tensor("T", np.array([b"a"], dtype=np.object_))
    assert tensor.triton_dtype() == pb_utils.TYPE_STRING


def test_tensor_wire_type_wins_for_bf16():
    tensor = pb_utils.Tensor("T", np.zeros(2, dtype=np.uint16), "BF16")
    assert tensor.triton_dtype() == pb_utils.TYPE_BF16
    assert pb_utils.Tensor("T", np.zeros(2, dtype=np.uint16)).triton_dtype() == pb_utils.TYPE_UINT16


def test_tensor_requires_a_numpy_array():
    with pytest.raises(pb_utils.TritonModelException, match="Tensor 'T' must be created from a numpy array, got list"):
        pb_utils.Tensor("T", [1, 2, 3])


def test_tensor_dlpack_round_trip():
    array = np.arange(4, dtype=np.int32)
    tensor = pb_utils.Tensor.from_dlpack("T", array)
    assert tensor.name() == "T"
    np.testing.assert_array_equal(tensor.as_numpy(), array)
    assert type(pb_utils.Tensor("U", array).to_dlpack()).__name__ == "PyCapsule"
    with pytest.raises(pb_utils.TritonModelException):
        pb_utils.Tensor.from_dlpack("T", object())


# --- requests and responses -----------------------------------------------------------------


def make_request(**kwargs) -> pb_utils.InferenceRequest:
    inputs = [
        pb_utils.Tensor("INPUT0", np.ones(4, dtype=np.float32)),
        pb_utils.Tensor("INPUT1", np.zeros(4, dtype=np.float32)),
    ]
    return pb_utils.InferenceRequest(model_name="add_sub", requested_output_names=["OUTPUT0"], inputs=inputs, **kwargs)


def test_get_input_tensor_by_name():
    request = make_request()
    assert pb_utils.get_input_tensor_by_name(request, "INPUT1") is request.inputs()[1]
    assert pb_utils.get_input_tensor_by_name(request, "INPUT9") is None


def test_inference_request_accessors():
    request = make_request(request_id="r1", correlation_id=42, flags=3, timeout=100, parameters={"k": 1})
    assert request.model_name() == "add_sub"
    assert request.requested_output_names() == ["OUTPUT0"]
    assert request.request_id() == "r1"
    assert request.correlation_id() == 42
    assert request.flags() == 3
    assert request.timeout() == 100
    assert json.loads(request.parameters()) == {"k": 1}
    assert not request.is_cancelled()


def test_inference_request_defaults():
    request = pb_utils.InferenceRequest()
    assert request.inputs() == []
    assert request.requested_output_names() == []
    assert request.request_id() == ""
    assert request.parameters() == "{}"


def test_response_sender_of_a_request_that_is_not_decoupled_collects_its_response():
    request = make_request()
    sender = request.get_response_sender()
    assert request.get_response_sender() is sender
    response = pb_utils.InferenceResponse([])
    sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    assert request._sent == [response]
    with pytest.raises(pb_utils.TritonModelException, match="closed"):
        sender.send(response)


def test_bls_exec_outside_a_server_raises(monkeypatch):
    monkeypatch.setattr(pb_utils, "_bls_executor", None)
    with pytest.raises(pb_utils.TritonModelException, match="inside a running server"):
        make_request().exec()


def test_inference_response_with_outputs():
    out = pb_utils.Tensor("OUTPUT0", np.ones(2, dtype=np.int32))
    response = pb_utils.InferenceResponse([out])
    assert response.output_tensors() == [out]
    assert not response.has_error()
    assert response.error() is None
    assert pb_utils.get_output_tensor_by_name(response, "OUTPUT0") is out
    assert pb_utils.get_output_tensor_by_name(response, "OUTPUT1") is None


def test_inference_response_with_error():
    error = pb_utils.TritonError("execute failed on purpose")
    response = pb_utils.InferenceResponse(output_tensors=[], error=error)
    assert response.has_error()
    assert response.error() is error
    assert response.output_tensors() == []


def test_inference_response_parameters_from_dict_or_json():
    assert json.loads(pb_utils.InferenceResponse(parameters={"a": 1}).parameters()) == {"a": 1}
    assert json.loads(pb_utils.InferenceResponse(parameters='{"b": true}').parameters()) == {"b": True}
    assert json.loads(pb_utils.InferenceResponse().parameters()) == {}


def test_response_sender_closes_after_final_flag():
    sent = []
    sender = pb_utils.InferenceResponseSender(lambda response, flags: sent.append((response, flags)))
    first = pb_utils.InferenceResponse()
    sender.send(first)
    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    assert sent == [(first, 0), (None, 1)]
    with pytest.raises(pb_utils.TritonModelException, match="Response sender has been closed"):
        sender.send(first)


# --- model config ----------------------------------------------------------------------------

CONFIG = {
    "name": "m",
    "max_batch_size": 0,
    "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
}


def test_get_config_by_name():
    assert pb_utils.get_output_config_by_name(CONFIG, "OUTPUT0") == CONFIG["output"][0]
    assert pb_utils.get_output_config_by_name(CONFIG, "INPUT0") is None
    assert pb_utils.get_input_config_by_name(CONFIG, "INPUT0") == CONFIG["input"][0]
    assert pb_utils.get_input_config_by_name({}, "INPUT0") is None


def fresh_config(**overrides) -> pb_utils.ModelConfig:
    data = json.loads(json.dumps(CONFIG))
    data.update(overrides)
    return pb_utils.ModelConfig(data)


def test_model_config_accepts_json_text():
    config = pb_utils.ModelConfig(json.dumps(CONFIG))
    assert config.as_dict() == CONFIG


def test_set_max_batch_size():
    config = fresh_config()
    config.set_max_batch_size(8)
    assert config.as_dict()["max_batch_size"] == 8
    config.set_max_batch_size(8)  # the same value again is fine


def test_set_max_batch_size_conflict():
    config = fresh_config(max_batch_size=4)
    with pytest.raises(ValueError) as info:
        config.set_max_batch_size(8)
    assert str(info.value) == (
        "configuration specified max_batch_size 4, but in auto-complete-config function for model 'm' "
        "specified max_batch_size 8"
    )
    assert config.as_dict()["max_batch_size"] == 4


def test_add_input_appends_a_new_input():
    config = fresh_config()
    config.add_input({"name": "INPUT1", "data_type": "TYPE_INT32", "dims": [2]})
    assert [i["name"] for i in config.as_dict()["input"]] == ["INPUT0", "INPUT1"]


def test_add_input_fills_a_partial_input():
    config = fresh_config(input=[{"name": "INPUT0", "data_type": "TYPE_INVALID", "dims": []}])
    config.add_input({"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]})
    assert config.as_dict()["input"] == [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}]


def test_add_input_with_the_same_values_is_fine():
    config = fresh_config()
    config.add_input({"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]})
    assert config.as_dict()["input"] == CONFIG["input"]


def test_add_input_dims_given_as_strings_compare_as_numbers():
    config = fresh_config(input=[{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": ["4"]}])
    config.add_input({"name": "INPUT0", "dims": [4]})
    assert len(config.as_dict()["input"]) == 1


@pytest.mark.parametrize(("key", "value"), [("data_type", "TYPE_INT32"), ("dims", [3])])
def test_add_input_conflict_raises(key, value):
    config = fresh_config()
    with pytest.raises(ValueError, match="INPUT0"):
        config.add_input({"name": "INPUT0", key: value})
    assert config.as_dict()["input"] == CONFIG["input"]


def test_add_output_conflict_raises():
    config = fresh_config()
    with pytest.raises(ValueError, match="OUTPUT0"):
        config.add_output({"name": "OUTPUT0", "data_type": "TYPE_STRING"})


def test_add_tensor_needs_a_name():
    with pytest.raises(ValueError, match="name"):
        fresh_config().add_output({"data_type": "TYPE_FP32"})


def test_add_output_to_a_config_without_outputs():
    config = pb_utils.ModelConfig({"name": "m"})
    config.add_output({"name": "OUT", "data_type": "TYPE_FP32", "dims": [1]})
    assert config.as_dict()["output"] == [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [1]}]


def test_other_auto_complete_setters():
    config = fresh_config()
    config.set_dynamic_batching()
    config.set_model_transaction_policy({"decoupled": True})
    config.add_instance_group({"kind": "KIND_CPU", "count": 2})
    data = config.as_dict()
    assert data["dynamic_batching"] == {}
    assert data["model_transaction_policy"] == {"decoupled": True}
    assert data["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]


def test_logger_routes_to_python_logging(caplog):
    with caplog.at_level("DEBUG", logger="tritonlite.python_model"):
        pb_utils.Logger.log_info("info line")
        pb_utils.Logger.log_warn("warn line")
        pb_utils.Logger.log_error("error line")
        pb_utils.Logger.log_verbose("verbose line")
        pb_utils.Logger.log("plain", pb_utils.Logger.WARNING)
    levels = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tritonlite.python_model"]
    assert levels == [
        ("INFO", "info line"),
        ("WARNING", "warn line"),
        ("ERROR", "error line"),
        ("DEBUG", "verbose line"),
        ("WARNING", "plain"),
    ]
