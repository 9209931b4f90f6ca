"""Unit tests of tritonlite.repository.config: parse, complete, validate and render config.pbtxt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import text_format

from tritonlite.core.config_json import config_to_json
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import (
    backend_of,
    complete_config,
    read_config,
    validate_config,
)

TEST_REPOSITORY = Path(__file__).parents[1] / "data" / "repository"

PYTHON_MODEL = """
name: "m"
backend: "python"
max_batch_size: 0
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
"""


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def completed(text: str, name: str = "m") -> mc.ModelConfig:
    config = parse(text)
    complete_config(config, name)
    return config


def write_model(root: Path, name: str, text: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.pbtxt").write_text(text)
    return folder


def invalid(config: mc.ModelConfig, name: str = "m") -> str:
    with pytest.raises(TritonError) as info:
        validate_config(config, name)
    assert info.value.kind is ErrorKind.INVALID_ARG
    return info.value.message


# --- read_config ------------------------------------------------------------------------------


def test_read_config_parses_the_file(tmp_path):
    config = read_config(write_model(tmp_path, "m", PYTHON_MODEL), strict=True)
    assert config.name == "m"
    assert config.backend == "python"
    assert [i.name for i in config.input] == ["INPUT0"]
    assert list(config.output[0].dims) == [4]


def test_parse_error_names_file_line_and_column():
    folder = TEST_REPOSITORY / "bad_config"
    with pytest.raises(TritonError) as info:
        read_config(folder, strict=False)
    assert info.value.kind is ErrorKind.INVALID_ARG
    message = info.value.message
    assert message.startswith(f"failed to parse model configuration {folder / 'config.pbtxt'}: line 4, column ")
    assert re.search(r"line 4, column \d+: ", message)
    # the position says where; the file's own text (a token, its line) stays out of the message
    assert message.endswith('Message type "inference.ModelConfig" has no field named "\u2026".')


def test_parse_error_of_a_bad_value(tmp_path):
    folder = write_model(tmp_path, "m", 'name: "m"\nbackend: "python"\nmax_batch_size: "eight"\n')
    with pytest.raises(TritonError) as info:
        read_config(folder, strict=True)
    assert re.match(
        rf"failed to parse model configuration {re.escape(str(folder))}/config.pbtxt: line 3, column \d+: ",
        info.value.message,
    )


def test_missing_config_is_an_error_only_when_strict(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(TritonError) as info:
        read_config(folder, strict=True)
    assert info.value.message == f"failed to load model configuration: {folder / 'config.pbtxt'} does not exist"
    assert read_config(folder, strict=False) == mc.ModelConfig()


# --- complete_config --------------------------------------------------------------------------


def test_name_defaults_to_the_folder_name():
    config = completed('backend: "python"', name="folder_name")
    assert config.name == "folder_name"


def test_version_policy_defaults_to_latest_one():
    config = completed(PYTHON_MODEL)
    assert config.version_policy.WhichOneof("policy_choice") == "latest"
    assert config.version_policy.latest.num_versions == 1


def test_explicit_version_policy_is_kept():
    config = completed(PYTHON_MODEL + "version_policy { all {} }")
    assert config.version_policy.WhichOneof("policy_choice") == "all"


def test_absent_instance_group_is_named_after_the_model():
    config = completed(PYTHON_MODEL)
    assert len(config.instance_group) == 1
    group = config.instance_group[0]
    assert group.name == "m"
    assert group.count == 1
    assert group.kind == mc.ModelInstanceGroup.KIND_CPU


def test_unnamed_groups_are_named_model_index_and_count_is_at_least_one():
    config = completed(
        PYTHON_MODEL + 'instance_group [{ kind: KIND_CPU count: 0 }, { name: "mine" count: 3 }, { count: 2 }]'
    )
    assert [g.name for g in config.instance_group] == ["m_0", "mine", "m_2"]
    assert [g.count for g in config.instance_group] == [1, 3, 2]
    assert all(g.kind == mc.ModelInstanceGroup.KIND_CPU for g in config.instance_group)


def test_kind_auto_with_gpus_becomes_gpu():
    config = completed(PYTHON_MODEL + "instance_group [{ gpus: [ 0 ] }]")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_default_kind_can_be_chosen():
    config = parse(PYTHON_MODEL)
    complete_config(config, "m", default_kind="KIND_MODEL")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_MODEL


@pytest.mark.parametrize(
    ("fields", "filename"),
    [
        ('backend: "python"', "model.py"),
        ('backend: "onnxruntime"', "model.onnx"),
        ('platform: "onnxruntime_onnx"', "model.onnx"),
        ('platform: "pytorch_libtorch"', "model.pt"),
        ('platform: "tensorrt_plan"', "model.plan"),
        ('backend: "openvino"', "model.xml"),
        ('platform: "tensorflow_savedmodel"', "model.savedmodel"),
    ],
)
def test_default_model_filename_per_backend(fields, filename):
    assert completed(fields).default_model_filename == filename


def test_explicit_default_model_filename_is_kept():
    assert completed('backend: "python" default_model_filename: "other.py"').default_model_filename == "other.py"


def test_unknown_backend_has_no_default_model_filename():
    assert completed('backend: "custom"').default_model_filename == ""


def test_backend_of_platform():
    assert backend_of(parse('platform: "onnxruntime_onnx"')) == "onnxruntime"
    assert backend_of(parse('backend: "python" platform: "onnxruntime_onnx"')) == "python"
    assert backend_of(parse('platform: "ensemble"')) == ""
    assert backend_of(parse("")) == ""


def test_preferred_batch_size_defaults_to_max_batch_size():
    config = completed('backend: "python" max_batch_size: 8 dynamic_batching {}')
    assert list(config.dynamic_batching.preferred_batch_size) == [8]


def test_explicit_preferred_batch_sizes_are_kept():
    config = completed('backend: "python" max_batch_size: 8 dynamic_batching { preferred_batch_size: [ 2, 4 ] }')
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]


def test_no_dynamic_batching_means_no_dynamic_batching_field():
    config = completed('backend: "python" max_batch_size: 8')
    assert not config.HasField("dynamic_batching")


def test_optimization_defaults_pin_memory():
    config = completed(PYTHON_MODEL)
    assert config.optimization.input_pinned_memory.enable is True
    assert config.optimization.output_pinned_memory.enable is True


def test_explicit_optimization_is_kept():
    config = completed(PYTHON_MODEL + "optimization { input_pinned_memory { enable: false } }")
    assert config.optimization.input_pinned_memory.enable is False
    assert not config.optimization.HasField("output_pinned_memory")


def test_no_backend_gets_no_instance_group():
    config = completed('name: "m"')
    assert len(config.instance_group) == 0
    assert config.version_policy.latest.num_versions == 1


def test_ensemble_gets_no_default_instance_group():
    config = completed('platform: "ensemble"')
    assert len(config.instance_group) == 0


def test_complete_config_is_idempotent():
    config = completed(PYTHON_MODEL + "max_batch_size: 4 dynamic_batching {}")
    again = mc.ModelConfig()
    again.CopyFrom(config)
    complete_config(again, "m")
    assert again == config


def test_completed_test_repository_config_matches_triton():
    # Triton 2.51's answer to GET /v2/models/identity_batched/config (tests/reference_data)
    config = read_config(TEST_REPOSITORY / "identity_batched", strict=False)
    complete_config(config, "identity_batched")
    data = config_to_json(config)
    assert data["version_policy"] == {"latest": {"num_versions": 1}}
    assert data["instance_group"] == [
        {
            "name": "identity_batched_0",
            "kind": "KIND_CPU",
            "count": 1,
            "gpus": [],
            "secondary_devices": [],
            "profile": [],
            "passive": False,
            "host_policy": "",
        }
    ]
    assert data["optimization"] == {
        "priority": "PRIORITY_DEFAULT",
        "input_pinned_memory": {"enable": True},
        "output_pinned_memory": {"enable": True},
        "gather_kernel_buffer_threshold": 0,
        "eager_batching": False,
    }
    assert data["input"] == [
        {
            "name": "INPUT0",
            "data_type": "TYPE_FP32",
            "format": "FORMAT_NONE",
            "dims": [4],
            "is_shape_tensor": False,
            "allow_ragged_batch": False,
            "optional": False,
            "is_non_linear_format_io": False,
        }
    ]
    assert data["default_model_filename"] == "model.py"
    assert data["max_batch_size"] == 4


# --- validate_config --------------------------------------------------------------------------


def test_valid_config_passes():
    validate_config(completed(PYTHON_MODEL), "m")


def test_name_mismatch():
    config = completed(PYTHON_MODEL.replace('name: "m"', 'name: "other"'))
    assert invalid(config) == "unexpected 'name' value 'other' in model configuration, expected 'm'"


def test_missing_platform_and_backend():
    config = completed('name: "m"')
    assert invalid(config) == (
        "unexpected platform type '' for m: model configuration must specify 'platform' or 'backend'"
    )


def test_unknown_platform():
    assert invalid(completed('platform: "caffe2_netdef"')) == "unexpected platform type 'caffe2_netdef' for m"


def test_negative_max_batch_size():
    config = completed(PYTHON_MODEL.replace("max_batch_size: 0", "max_batch_size: -1"))
    assert invalid(config) == "'max_batch_size' must be non-negative value for m"


def test_dynamic_batching_needs_max_batch_size():
    config = completed(PYTHON_MODEL + "dynamic_batching {}")
    assert "dynamic batching is enabled for model 'm' but max_batch_size is 0" in invalid(config)


def test_duplicate_input_names():
    config = completed(PYTHON_MODEL + 'input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [ 1 ] }]')
    assert invalid(config) == "input 'INPUT0' specified multiple times for m"


def test_duplicate_output_names():
    config = completed(PYTHON_MODEL + 'output [{ name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1 ] }]')
    assert invalid(config) == "output 'OUTPUT0' specified multiple times for m"


def test_input_without_name():
    config = completed('backend: "python" input [{ data_type: TYPE_FP32 dims: [ 1 ] }]')
    assert invalid(config) == "model input must specify 'name' for m"


def test_missing_data_type():
    config = completed('backend: "python" output [{ name: "OUT" dims: [ 1 ] }]')
    assert invalid(config) == "model output 'OUT' must specify 'data_type' for m"


@pytest.mark.parametrize("dims", ["[ 0 ]", "[ 4, -2 ]", "[ -1, 0 ]"])
def test_bad_dims(dims):
    config = completed(f'backend: "python" input [{{ name: "X" data_type: TYPE_FP32 dims: {dims} }}]')
    listed = "[" + ", ".join(dims.strip("[] ").split(", ")) + "]"
    assert invalid(config) == (
        f"model input 'X' dims must be integer >= 1, or -1 to indicate a variable-size dimension for m, got {listed}"
    )


def test_variable_and_empty_dims_are_valid():
    validate_config(
        completed(
            'backend: "python" input [{ name: "X" data_type: TYPE_FP32 dims: [ -1, 3 ] },'
            ' { name: "S" data_type: TYPE_INT32 dims: [ ] }]'
        ),
        "m",
    )


def test_reshape_size_mismatch():
    config = completed(
        'backend: "python" input [{ name: "X" data_type: TYPE_FP32 dims: [ 2, 3 ] reshape { shape: [ 5 ] } }]'
    )
    assert invalid(config) == "model input 'X' has different size for dims and reshape for m"


def test_reshape_with_same_size_is_valid():
    validate_config(
        completed(
            'backend: "python" input [{ name: "X" data_type: TYPE_FP32 dims: [ 2, 3 ] reshape { shape: [ 6 ] } }]'
        ),
        "m",
    )


def test_reshape_with_variable_dims_is_not_size_checked():
    validate_config(
        completed(
            'backend: "python" input [{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] reshape { shape: [ 1, -1 ] } }]'
        ),
        "m",
    )


def test_reshape_bad_dim():
    config = completed(
        'backend: "python" output [{ name: "Y" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 0 ] } }]'
    )
    assert invalid(config).startswith("model output 'Y' reshape dims must be integer >= 1")


# --- config_to_json ---------------------------------------------------------------------------


def test_json_prints_int64_fields_as_numbers():
    config = completed(
        'backend: "python" max_batch_size: 8 '
        'input [{ name: "X" data_type: TYPE_FP32 dims: [ -1, 3 ] reshape { shape: [ 3, -1 ] } }] '
        "dynamic_batching { max_queue_delay_microseconds: 100 preferred_batch_size: [ 4 ] } "
        "version_policy { specific { versions: [ 1, 3 ] } }"
    )
    data = config_to_json(config)
    assert data["input"][0]["dims"] == [-1, 3]
    assert data["input"][0]["reshape"] == {"shape": [3, -1]}
    assert data["dynamic_batching"]["max_queue_delay_microseconds"] == 100
    assert data["dynamic_batching"]["preferred_batch_size"] == [4]
    assert data["version_policy"] == {"specific": {"versions": [1, 3]}}


def test_json_prints_default_scalars_and_empty_lists():
    data = config_to_json(completed(PYTHON_MODEL))
    assert data["platform"] == ""
    assert data["runtime"] == ""
    assert data["max_batch_size"] == 0
    assert data["batch_input"] == []
    assert data["model_warmup"] == []
    assert data["parameters"] == {}
    assert data["output"][0]["label_filename"] == ""
    assert data["output"][0]["is_shape_tensor"] is False
    assert "dynamic_batching" not in data  # unset messages stay absent, as in Triton


def test_json_uses_proto_field_names_and_enum_names():
    data = config_to_json(completed(PYTHON_MODEL))
    assert "max_batch_size" in data and "maxBatchSize" not in data
    assert data["input"][0]["data_type"] == "TYPE_FP32"
    assert data["input"][0]["format"] == "FORMAT_NONE"


def test_json_parameters_map_and_nested_int64():
    config = completed(
        PYTHON_MODEL
        + 'parameters { key: "k" value { string_value: "v" } } '
        + "sequence_batching { max_sequence_idle_microseconds: 5000000 "
        + 'control_input [{ name: "START" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }] }] }'
    )
    data = config_to_json(config)
    assert data["parameters"] == {"k": {"string_value": "v"}}
    assert data["sequence_batching"]["max_sequence_idle_microseconds"] == 5000000
    control = data["sequence_batching"]["control_input"][0]["control"][0]
    assert control["int32_false_true"] == [0, 1]
    assert control["kind"] == "CONTROL_SEQUENCE_START"


def test_json_int64_inside_map_values_and_repeated_messages():
    config = completed(
        'backend: "python" model_warmup [{ name: "w" batch_size: 1 '
        'inputs { key: "X" value { data_type: TYPE_FP32 dims: [ 2, 3 ] zero_data: true } } }] '
        'ensemble_scheduling { step [{ model_name: "a" model_version: -1 input_map { key: "a" value: "b" } }] }'
    )
    data = config_to_json(config)
    assert data["model_warmup"][0]["inputs"]["X"]["dims"] == [2, 3]
    assert data["model_warmup"][0]["batch_size"] == 1
    step = data["ensemble_scheduling"]["step"][0]
    assert step["model_version"] == -1
    assert step["input_map"] == {"a": "b"}
