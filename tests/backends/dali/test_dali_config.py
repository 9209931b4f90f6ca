"""A DALI model's config against its pipeline: Triton's DALI auto-complete and load checks, and the
refusal of GPU operators on a CPU instance (none of it needs DALI installed)."""

from __future__ import annotations

import pytest
from dali_pipelines import preprocess_bytes, with_declared_output, with_device, write_model
from google.protobuf import text_format

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.dali.backend import DaliInstance, complete_dali_config
from tritonlite.backends.dali.config import complete_from_pipeline, validate_against_pipeline
from tritonlite.backends.dali.pipeline_def import describe
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc

DECLARED = with_declared_output(preprocess_bytes(), dtype=9, ndim=3)  # FP32, 3 dimensions


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def test_auto_complete_from_an_empty_config(tmp_path):
    folder = write_model(tmp_path, "pre", 'backend: "dali"', DECLARED)
    config = complete_dali_config(parse('name: "pre" backend: "dali"'), folder, folder / "1", {})
    assert config.max_batch_size == 32  # the pipeline's
    (tensor,) = config.input
    assert (tensor.name, mc.DataType.Name(tensor.data_type), list(tensor.dims)) == ("DALI_INPUT_0", "TYPE_UINT8", [-1])
    assert tensor.allow_ragged_batch
    (out,) = config.output
    assert (out.name, mc.DataType.Name(out.data_type), list(out.dims)) == ("DALI_OUTPUT_0", "TYPE_FP32", [-1, -1, -1])
    validate_against_pipeline(config, describe(DECLARED))


def test_an_explicit_max_batch_size_of_zero_stays(tmp_path):
    folder = write_model(tmp_path, "pre", 'backend: "dali"\nmax_batch_size: 0\n', DECLARED)
    config = complete_dali_config(parse('backend: "dali" max_batch_size: 0'), folder, folder / "1", {})
    assert config.max_batch_size == 0


def test_config_dims_are_merged_with_the_pipeline():
    config = parse(
        'max_batch_size: 4 input [{ name: "DALI_INPUT_0" dims: [ -1 ] }]'
        ' output [{ name: "IMAGES" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }]'
    )
    complete_from_pipeline(config, describe(DECLARED), 4)
    assert config.output[0].name == "IMAGES" and list(config.output[0].dims) == [3, 224, 224]
    assert mc.DataType.Name(config.input[0].data_type) == "TYPE_UINT8"
    assert not config.input[0].allow_ragged_batch  # the config's own input keeps its setting


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'input [{ name: "OTHER" data_type: TYPE_UINT8 dims: [ -1 ] }]',
            "Configuration file contains config for OTHER but such input is not present in the pipeline.",
        ),
        (
            'input [{ name: "DALI_INPUT_0" data_type: TYPE_FP32 dims: [ -1 ] }]',
            'Mismatch of data_type config for "DALI_INPUT_0".\nData type defined in config: TYPE_FP32\n'
            "Data type defined in pipeline: TYPE_UINT8",
        ),
        (
            'input [{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ -1, 3 ] }]',
            'Mismatch in number of dimensions for "DALI_INPUT_0"\nNumber of dimensions defined in config: 2\n'
            "Number of dimensions defined in pipeline: 1",
        ),
        (
            'output [{ name: "A" }, { name: "B" }]',
            "The number of outputs specified in the DALI pipeline and the configuration file do not match."
            "\nModel config outputs: 2\nPipeline outputs: 1",
        ),
    ],
)
def test_auto_complete_refuses_a_config_the_pipeline_contradicts(text, message):
    with pytest.raises(TritonError) as error:
        complete_from_pipeline(parse("max_batch_size: 4 " + text), describe(DECLARED), 4)
    assert error.value.kind == ErrorKind.INVALID_ARG
    assert error.value.message == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'output [{ name: "O" data_type: TYPE_FP32 dims: [ -1, -1, -1 ] }]',
            'Missing config for "DALI_INPUT_0" input.',
        ),
        (
            'input [{ name: "DALI_INPUT_0" dims: [ -1 ] }] output [{ name: "O" data_type: TYPE_FP32 dims: [ -1 ] }]',
            'Missing data_type config for "DALI_INPUT_0"',
        ),
        (
            'input [{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 }] output [{ name: "O" data_type: TYPE_FP32 }]',
            'Missing dims config for "DALI_INPUT_0"',
        ),
        (
            'input [{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ 5 ] }]',
            "The number of outputs specified in the DALI pipeline and the configuration file do not match."
            "\nModel config outputs: 0\nPipeline outputs: 1",
        ),
    ],
)
def test_load_checks(text, message):
    with pytest.raises(TritonError) as error:
        validate_against_pipeline(parse("max_batch_size: 4 " + text), describe(preprocess_bytes()))
    assert error.value.message == message


def test_a_string_input_carries_encoded_images():
    config = parse(
        'max_batch_size: 4 input [{ name: "DALI_INPUT_0" data_type: TYPE_STRING dims: [ 1 ] }]'
        ' output [{ name: "O" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }]'
    )
    validate_against_pipeline(config, describe(preprocess_bytes()))


GPU_CONFIG = """
name: "pre"
backend: "dali"
max_batch_size: 8
input [{ name: "DALI_INPUT_0" data_type: TYPE_UINT8 dims: [ -1 ] }]
output [{ name: "DALI_OUTPUT_0" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }]
"""


@pytest.mark.parametrize("device", ["mixed", "gpu"])
def test_a_cpu_instance_refuses_gpu_operators_naming_them(tmp_path, device):
    folder = write_model(tmp_path, "pre", GPU_CONFIG, with_device(preprocess_bytes(), "decoders__Image", device))
    spec = InstanceSpec("pre", 1, folder, parse(GPU_CONFIG), instance_name="pre_0", kind="CPU")
    with pytest.raises(TritonError) as error:
        DaliInstance(spec)
    assert error.value.kind == ErrorKind.INVALID_ARG
    assert error.value.message.startswith(
        f"model 'pre': DALI operator 'nvidia.dali.fn.decoders.image' (instance '__Image_0') runs on device "
        f"'{device}', which needs a GPU, but instance 'pre_0' runs on the CPU"
    )


def test_a_missing_or_corrupt_pipeline_is_reported(tmp_path):
    folder = tmp_path / "pre"
    (folder / "1").mkdir(parents=True)
    spec = InstanceSpec("pre", 1, folder, parse(GPU_CONFIG), instance_name="pre_0")
    with pytest.raises(TritonError) as error:
        DaliInstance(spec)
    assert error.value.kind == ErrorKind.UNAVAILABLE and "model.dali" in error.value.message
    (folder / "1" / "model.dali").write_bytes(b"not a pipeline")
    with pytest.raises(TritonError) as error:
        DaliInstance(spec)
    assert error.value.kind == ErrorKind.INVALID_ARG and "not a serialized DALI pipeline" in error.value.message


def test_a_missing_dali_says_how_to_install_it(monkeypatch):
    import sys

    from tritonlite.backends.dali.backend import import_dali

    monkeypatch.setitem(sys.modules, "nvidia.dali.pipeline", None)
    with pytest.raises(TritonError) as error:
        import_dali()
    assert error.value.kind == ErrorKind.UNAVAILABLE and "pip install tritonlite[dali]" in error.value.message
