"""Triton's TF auto-complete and load checks against a signature's tensors (no TensorFlow needed)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from tritonlite.backends.tensorflow.backend import TfTensor, complete_from_signature, validate_against_signature
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc

BATCHING_IN = [TfTensor("x", "TYPE_FP32", (-1, 4)), TfTensor("s", "TYPE_STRING", (-1, 1))]
BATCHING_OUT = [TfTensor("y", "TYPE_FP32", (-1, 3)), TfTensor("score", "TYPE_FP32", (-1,))]
FIXED_IN = [TfTensor("x", "TYPE_FP32", (2, 4))]
FIXED_OUT = [TfTensor("y", "TYPE_FP32", (2, 3))]


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def entries(tensors) -> list[tuple]:
    return [
        (t.name, mc.DataType.Name(t.data_type), list(t.dims), t.HasField("reshape") and list(t.reshape.shape))
        for t in tensors
    ]


def test_a_batching_signature_fills_everything():
    config = parse("")
    complete_from_signature(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert config.max_batch_size == 4 and config.HasField("dynamic_batching")
    assert entries(config.input) == [("x", "TYPE_FP32", [4], False), ("s", "TYPE_STRING", [1], False)]
    # a per-item scalar: dims [1] reshaped to []
    assert entries(config.output) == [("y", "TYPE_FP32", [3], False), ("score", "TYPE_FP32", [1], [])]


def test_default_max_batch_size_setting_and_one_means_no_dynamic_batching():
    config = parse("")
    complete_from_signature(config, BATCHING_IN, BATCHING_OUT, 1, "m")
    assert config.max_batch_size == 1 and not config.HasField("dynamic_batching")


def test_a_fixed_shape_signature_does_not_batch():
    config = parse("")
    complete_from_signature(config, FIXED_IN, FIXED_OUT, 4, "m")
    assert config.max_batch_size == 0
    assert entries(config.input) == [("x", "TYPE_FP32", [2, 4], False)]


def test_config_dims_tell_whether_a_variable_first_dimension_is_the_batch():
    config = parse('input [{ name: "x" data_type: TYPE_FP32 dims: [ -1, 4 ] }]')
    complete_from_signature(config, BATCHING_IN[:1], BATCHING_OUT[:1], 4, "m")
    assert config.max_batch_size == 0  # the config's rank says: no batch dimension
    assert entries(config.output) == [("y", "TYPE_FP32", [-1, 3], False)]


@pytest.mark.parametrize(
    ("text", "inputs", "message"),
    [
        (
            "max_batch_size: 8",
            FIXED_IN,
            "unable to autofill for 'm', configuration specified max-batch 8 but model signature does not support "
            "batching",
        ),
        (
            'input [{ name: "x" dims: [ 4 ] }, { name: "s" dims: [ -1, 1 ] }]',
            BATCHING_IN,
            "unable to autofill for 'm', model tensor configurations are contradicting each other in terms of "
            "whether batching is supported",
        ),
    ],
)
def test_auto_complete_refusals(text, inputs, message):
    with pytest.raises(TritonError) as error:
        complete_from_signature(parse(text), inputs, BATCHING_OUT if inputs is BATCHING_IN else FIXED_OUT, 4, "m")
    assert error.value.kind == ErrorKind.INTERNAL and error.value.message == message


def test_unknown_rank_cannot_be_auto_completed():
    with pytest.raises(TritonError) as error:
        complete_from_signature(parse(""), [TfTensor("x", "TYPE_FP32", None)], FIXED_OUT, 4, "m")
    assert error.value.message == (
        "Unable to autofill for 'm': the rank of model tensor 'x' is 0 which is not supported"
    )


CONFIG = """
name: "m"
max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "s" data_type: TYPE_STRING dims: [ 1 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 3 ] }]
"""


def test_a_matching_config_passes():
    validate_against_signature(parse(CONFIG), "m", BATCHING_IN, BATCHING_OUT)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ name: "s" data_type: TYPE_STRING dims: [ 1 ] }',
            "",
            "unable to load model 'm', configuration expects 1 inputs, model provides 2",
        ),
        ('name: "y"', 'name: "z"', "unexpected inference output 'z', allowed outputs are: score, y"),
        (
            'name: "x" data_type: TYPE_FP32',
            'name: "x" data_type: TYPE_INT32',
            "unable to load model 'm', configuration expects datatype TYPE_INT32 for input 'x', model provides "
            "TYPE_FP32",
        ),
        (
            "dims: [ 3 ]",
            "dims: [ 5 ]",
            "model 'm', tensor 'y': the model expects 2 dimensions (shape [-1,3]) but the model configuration "
            "specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit "
            "tensor shape, making complete shape [-1,5])",
        ),
    ],
)
def test_load_checks(old, new, message):
    text = CONFIG.replace(old, new).replace("}, ]", "}]").replace(", ]", "]")
    with pytest.raises(TritonError) as error:
        validate_against_signature(parse(text), "m", BATCHING_IN, BATCHING_OUT)
    assert error.value.kind == ErrorKind.INVALID_ARG and error.value.message == message


def test_thread_settings_from_parameters_then_backend_config():
    from tritonlite.backends.tensorflow.backend import thread_settings

    config = parse('parameters { key: "TF_NUM_INTRA_THREADS" value: { string_value: "3" } }')
    settings = thread_settings(config, "m", {"intra-op-threads": "5", "inter-op-threads": "7"})
    assert (settings.intra_op, settings.inter_op) == (3, 7)
    with pytest.raises(TritonError) as error:
        thread_settings(parse('parameters { key: "TF_NUM_INTER_THREADS" value: { string_value: "-1" } }'), "m", {})
    assert (
        error.value.message == "parameter 'TF_NUM_INTER_THREADS' must be non-negative number for TensorFlow model 'm'"
    )


def test_a_missing_tensorflow_says_how_to_install_it(monkeypatch):
    import sys

    from tritonlite.backends.tensorflow.runtime import import_tensorflow

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(TritonError) as error:
        import_tensorflow()
    assert error.value.kind == ErrorKind.UNAVAILABLE and "pip install tritonlite[tensorflow]" in error.value.message
