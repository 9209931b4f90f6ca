"""Unit tests of tritonlite.core.validation against the error texts real Triton 2.51 gives.

Each expected text is the one recorded in tests/reference_data/triton_2.51.json (or in
Triton's own qa/L0_input_validation tests) for the same request.
"""

from __future__ import annotations

import numpy as np
import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferTensor, RequestedOutput
from tritonlite.core.validation import RAW_INPUT_NAME, TensorSpec, request_prefix, validate_request

ADD_SUB_INPUTS = {
    "INPUT0": TensorSpec("INPUT0", "FP32", (4,)),
    "INPUT1": TensorSpec("INPUT1", "FP32", (4,)),
}
ADD_SUB_OUTPUTS = {
    "OUTPUT0": TensorSpec("OUTPUT0", "FP32", (4,)),
    "OUTPUT1": TensorSpec("OUTPUT1", "FP32", (4,)),
}
BATCHED_INPUTS = {"INPUT0": TensorSpec("INPUT0", "FP32", (4,))}
BATCHED_OUTPUTS = {"OUTPUT0": TensorSpec("OUTPUT0", "FP32", (4,))}

NO_ID = "[request id: <id_unknown>] "
BATCH_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to "
    "each input shape. If you want to specify the full shape including the batch dim in your input dims config, "
    "try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."
)


def fp32(name: str, shape: list[int], data: np.ndarray | None = None) -> InferTensor:
    if data is None:
        data = np.zeros(shape, dtype=np.float32)
    return InferTensor(name, "FP32", shape, data)


def add_sub(*tensors: InferTensor, id: str = "", outputs: list[str] | None = None) -> int:
    request = InferRequest("add_sub", id=id, inputs=list(tensors))
    if outputs is not None:
        request.outputs = [RequestedOutput(name) for name in outputs]
    return validate_request(request, "add_sub", ADD_SUB_INPUTS, ADD_SUB_OUTPUTS, 2, 0)


def batched(*tensors: InferTensor) -> int:
    request = InferRequest("identity_batched", inputs=list(tensors))
    return validate_request(request, "identity_batched", BATCHED_INPUTS, BATCHED_OUTPUTS, 1, 4)


def error_of(call, *args, **kwargs) -> TritonError:
    with pytest.raises(TritonError) as info:
        call(*args, **kwargs)
    assert info.value.kind is ErrorKind.INVALID_ARG
    return info.value


def test_valid_request_returns_batch_size_zero_without_batching():
    assert add_sub(fp32("INPUT0", [4]), fp32("INPUT1", [4])) == 0


def test_missing_input():
    error = error_of(add_sub, fp32("INPUT0", [4]))
    assert error.message == (
        "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'add_sub'. Got input(s) "
        "['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s)."
    )


def test_no_inputs_at_all_lists_empty_brackets():
    # Triton's qa/L0_input_validation: "Got input(s) [], but missing required input(s) ['INPUT0',...]"
    error = error_of(add_sub)
    assert error.message == (
        "[request id: <id_unknown>] expected 2 inputs but got 0 inputs for model 'add_sub'. Got input(s) [], "
        "but missing required input(s) ['INPUT0','INPUT1']. Please provide all required input(s)."
    )


def test_extra_input_lists_inputs_reversed_and_missing_as_bare_bracket():
    error = error_of(add_sub, fp32("INPUT0", [4]), fp32("INPUT1", [4]), fp32("INPUT2", [4]))
    assert error.message == (
        "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'add_sub'. Got input(s) "
        "['INPUT2','INPUT1','INPUT0'], but missing required input(s) ]. Please provide all required input(s)."
    )


def test_unknown_input_in_place_of_a_required_one():
    # captured from Triton 2.51: no request-id prefix on this one
    error = error_of(add_sub, fp32("INPUT0", [4]), fp32("INPUT9", [4]))
    assert error.message == "unexpected inference input 'INPUT9' for model 'add_sub'"


def test_wrong_datatype():
    tensor = InferTensor("INPUT0", "INT32", [4], np.zeros(4, dtype=np.int32))
    error = error_of(add_sub, tensor, fp32("INPUT1", [4]))
    assert error.message == (
        "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'INT32', but model 'add_sub' expects 'FP32'"
    )


def test_bytes_for_fp32_input():
    tensor = InferTensor("INPUT0", "BYTES", [4], np.array([b"a"] * 4, dtype=np.object_))
    error = error_of(add_sub, tensor, fp32("INPUT1", [4]))
    assert error.message == (
        "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'BYTES', but model 'add_sub' expects 'FP32'"
    )


def test_wrong_shape_without_batching_ends_with_dot_space():
    error = error_of(add_sub, fp32("INPUT0", [3]), fp32("INPUT1", [4]))
    assert error.message == (
        "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'add_sub'. Expected [4], got [3]. "
    )


def test_wrong_rank_without_batching():
    error = error_of(add_sub, fp32("INPUT0", [1, 4]), fp32("INPUT1", [4]))
    assert error.message == (
        "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'add_sub'. Expected [4], got [1,4]. "
    )


def test_request_id_prefix():
    error = error_of(add_sub, fp32("INPUT0", [3]), fp32("INPUT1", [4]), id="my-id")
    assert error.message.startswith("[request id: my-id] unexpected shape for input 'INPUT0'")
    assert request_prefix(InferRequest("m", id="my-id")) == "[request id: my-id] "
    assert request_prefix(InferRequest("m")) == "[request id: <id_unknown>] "


def test_batch_too_large():
    error = error_of(batched, fp32("INPUT0", [5, 4]))
    assert (
        error.message == "[request id: <id_unknown>] inference request batch-size must be <= 4 for 'identity_batched'"
    )


def test_batch_dim_missing_has_the_note():
    error = error_of(batched, fp32("INPUT0", [4]))
    assert error.message == (
        "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'identity_batched'. "
        f"Expected [-1,4], got [4]. {BATCH_NOTE}"
    )


def test_scalar_input_for_batched_model_is_a_shape_error():
    error = error_of(batched, InferTensor("INPUT0", "FP32", [], np.zeros((), dtype=np.float32)))
    assert error.message.startswith(
        "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'identity_batched'. "
        "Expected [-1,4], got []. NOTE:"
    )


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_batched_request_returns_its_batch_size(batch):
    assert batched(fp32("INPUT0", [batch, 4])) == batch


def test_batch_sizes_of_inputs_must_agree():
    inputs = {"A": TensorSpec("A", "FP32", (2,)), "B": TensorSpec("B", "FP32", (2,))}
    request = InferRequest("m", inputs=[fp32("A", [2, 2]), fp32("B", [3, 2])])
    error = error_of(validate_request, request, "m", inputs, {}, 2, 8)
    assert "unexpected shape for input 'B' for model 'm'. Expected [-1,2], got [3,2]." in error.message


def test_variable_dims_accept_any_size():
    inputs = {"X": TensorSpec("X", "INT64", (-1, 3))}
    request = InferRequest("m", inputs=[InferTensor("X", "INT64", [7, 3], np.zeros((7, 3), dtype=np.int64))])
    assert validate_request(request, "m", inputs, {}, 1, 0) == 0
    request.inputs[0] = InferTensor("X", "INT64", [7, 2], np.zeros((7, 2), dtype=np.int64))
    error = error_of(validate_request, request, "m", inputs, {}, 1, 0)
    assert "Expected [-1,3], got [7,2]. " in error.message


def test_byte_size_mismatch():
    wrong = np.zeros(12, dtype=np.uint8)  # 12 raw bytes for a [4] FP32 tensor
    error = error_of(add_sub, fp32("INPUT0", [4], wrong), fp32("INPUT1", [4]))
    assert error.message == (
        "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'add_sub'. "
        "Expected 16, got 12"
    )


def test_bytes_inputs_have_no_byte_size_check():
    inputs = {"TEXT": TensorSpec("TEXT", "BYTES", (-1,))}
    data = np.array([b"a", b"longer"], dtype=np.object_)
    request = InferRequest("m", inputs=[InferTensor("TEXT", "BYTES", [2], data)])
    assert validate_request(request, "m", inputs, {}, 1, 0) == 0


def test_unexpected_output():
    error = error_of(add_sub, fp32("INPUT0", [4]), fp32("INPUT1", [4]), outputs=["OUTPUT9"])
    assert error.message == "unexpected inference output 'OUTPUT9' for model 'add_sub'"


def test_unexpected_output_is_checked_before_inputs():
    error = error_of(add_sub, outputs=["OUTPUT0", "OUTPUT9"])
    assert error.message == "unexpected inference output 'OUTPUT9' for model 'add_sub'"


def test_known_outputs_are_accepted():
    assert add_sub(fp32("INPUT0", [4]), fp32("INPUT1", [4]), outputs=["OUTPUT1"]) == 0


OPTIONAL_INPUTS = {
    "A": TensorSpec("A", "FP32", (1,)),
    "B": TensorSpec("B", "FP32", (1,), optional=True),
}


def test_optional_input_may_be_left_out():
    request = InferRequest("opt", inputs=[fp32("A", [1])])
    assert validate_request(request, "opt", OPTIONAL_INPUTS, {}, 1, 0) == 0
    request = InferRequest("opt", inputs=[fp32("A", [1]), fp32("B", [1])])
    assert validate_request(request, "opt", OPTIONAL_INPUTS, {}, 1, 0) == 0


def test_optional_input_alone_misses_the_required_ones():
    # Triton's qa/L0_input_validation: with optional inputs the expected count is a range
    inputs = {
        "A": TensorSpec("A", "FP32", (1,)),
        "B": TensorSpec("B", "FP32", (1,)),
        "C": TensorSpec("C", "FP32", (1,), optional=True),
    }
    request = InferRequest("opt", inputs=[fp32("C", [1])])
    error = error_of(validate_request, request, "opt", inputs, {}, 2, 0)
    assert error.message == (
        "[request id: <id_unknown>] expected number of inputs between 2 and 3 but got 1 inputs for model 'opt'. "
        "Got input(s) ['C'], but missing required input(s) ['A','B']. Please provide all required input(s)."
    )


def test_empty_request_with_optional_inputs():
    error = error_of(validate_request, InferRequest("opt"), "opt", OPTIONAL_INPUTS, {}, 1, 0)
    assert error.message == (
        "[request id: <id_unknown>] expected number of inputs between 1 and 2 but got 0 inputs for model 'opt'. "
        "Got input(s) [], but missing required input(s) ['A']. Please provide all required input(s)."
    )


def test_too_many_inputs_with_optional_ones():
    request = InferRequest("opt", inputs=[fp32("A", [1]), fp32("B", [1]), fp32("C", [1])])
    error = error_of(validate_request, request, "opt", OPTIONAL_INPUTS, {}, 1, 0)
    assert error.message == (
        "[request id: <id_unknown>] expected number of inputs between 1 and 2 but got 3 inputs for model 'opt'. "
        "Got input(s) ['C','B','A'], but missing required input(s) ]. Please provide all required input(s)."
    )


def test_unknown_input_beside_an_optional_one():
    request = InferRequest("opt", inputs=[fp32("A", [1]), fp32("Z", [1])])
    error = error_of(validate_request, request, "opt", OPTIONAL_INPUTS, {}, 1, 0)
    assert error.message == "unexpected inference input 'Z' for model 'opt'"


def test_unknown_input_when_fewer_than_all_inputs_are_given():
    inputs = {**OPTIONAL_INPUTS, "C": TensorSpec("C", "FP32", (1,), optional=True)}
    request = InferRequest("opt", inputs=[fp32("A", [1]), fp32("Z", [1])])
    error = error_of(validate_request, request, "opt", inputs, {}, 1, 0)
    assert error.message == "unexpected inference input 'Z' for model 'opt'"


def test_all_optional_inputs_accept_an_empty_request():
    inputs = {"A": TensorSpec("A", "FP32", (1,), optional=True)}
    assert validate_request(InferRequest("m"), "m", inputs, {}, 0, 0) == 0


LABELS_INPUTS = {"INPUT0": TensorSpec("INPUT0", "FP32", (1,))}


def raw(data: np.ndarray, shape: list[int], datatype: str = "FP32") -> InferRequest:
    return InferRequest("labels", inputs=[InferTensor(RAW_INPUT_NAME, datatype, shape, data)])


def test_raw_input_binds_to_the_only_input():
    request = raw(np.array([2.0], dtype=np.float32), [1])
    assert validate_request(request, "labels", LABELS_INPUTS, {}, 1, 0) == 0
    assert request.inputs[0].name == "INPUT0"


def test_raw_input_batch_size_is_the_first_dim():
    request = raw(np.zeros((3, 1), dtype=np.float32), [3, 1])
    assert validate_request(request, "labels", LABELS_INPUTS, {}, 1, 8) == 3
    assert request.inputs[0].name == "INPUT0"


def test_raw_input_wrong_size_names_raw_input():
    request = raw(np.zeros(8, dtype=np.uint8), [1])
    error = error_of(validate_request, request, "labels", LABELS_INPUTS, {}, 1, 0)
    assert error.message == (
        "[request id: <id_unknown>] input byte size mismatch for input 'raw_input' for model 'labels'. "
        "Expected 4, got 8"
    )
    assert request.inputs[0].name == RAW_INPUT_NAME


def test_raw_input_is_an_ordinary_name_when_the_model_has_two_inputs():
    request = InferRequest("add_sub", inputs=[fp32(RAW_INPUT_NAME, [4])])
    error = error_of(validate_request, request, "add_sub", ADD_SUB_INPUTS, {}, 2, 0)
    assert "expected 2 inputs but got 1 inputs" in error.message
    assert "Got input(s) ['raw_input']" in error.message


def test_input_really_named_raw_input_is_not_rebound():
    inputs = {RAW_INPUT_NAME: TensorSpec(RAW_INPUT_NAME, "FP32", (1,))}
    request = InferRequest("m", inputs=[fp32(RAW_INPUT_NAME, [2])])
    error = error_of(validate_request, request, "m", inputs, {}, 1, 0)
    assert "unexpected shape for input 'raw_input' for model 'm'. Expected [1], got [2]. " in error.message
