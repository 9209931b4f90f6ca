"""Auto-complete of ONNX model configs (Triton's ORT backend rules) and backend detection."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from tritonlite.backends import auto_complete, complete_backend_fields
from tritonlite.backends.onnxruntime.backend import OnnxTensor, complete_from_model, default_max_batch_size
from tritonlite.core.config_json import config_to_json
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc


def parse(text: str = "") -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config


BATCHING_IN = [OnnxTensor("x", "tensor(float)", (-1, 4)), OnnxTensor("s", "tensor(string)", (-1,))]
BATCHING_OUT = [OnnxTensor("y", "tensor(float16)", (-1, 2, -1))]


def test_batching_model_gets_default_max_batch_and_dynamic_batching():
    config = parse()
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("x", "TYPE_FP32", [4]),
        ("s", "TYPE_STRING", [1]),
    ]
    assert config.input[1].HasField("reshape") and list(config.input[1].reshape.shape) == []
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.output] == [
        ("y", "TYPE_FP16", [2, -1])
    ]


def test_max_batch_size_one_has_no_dynamic_batching():
    config = parse()
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 1, "m")
    assert config.max_batch_size == 1
    assert not config.HasField("dynamic_batching")


def test_default_max_batch_size_zero_keeps_the_batch_dimension():
    config = parse()
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 0, "m")
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [-1, 4]
    assert not config.input[1].HasField("reshape")  # no reshape without batching (as Triton)


def test_non_batching_model_keeps_full_dims():
    config = parse()
    complete_from_model(
        config, [OnnxTensor("x", "tensor(int64)", (3, 4))], [OnnxTensor("y", "tensor(bool)", (3,))], 4, "m"
    )
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [3, 4] and list(config.output[0].dims) == [3]


def test_explicit_max_batch_size_is_kept_and_refused_for_a_non_batching_model():
    config = parse("max_batch_size: 16")
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert config.max_batch_size == 16 and config.HasField("dynamic_batching")
    with pytest.raises(TritonError) as caught:
        complete_from_model(parse("max_batch_size: 2"), [OnnxTensor("x", "tensor(float)", (3,))], [], 4, "m")
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert caught.value.message == (
        "autofill failed for model 'm': model does not support batching while non-zero max_batch_size is specified"
    )


def test_existing_scheduler_is_kept():
    config = parse("sequence_batching {}")
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert not config.HasField("dynamic_batching")
    config = parse("dynamic_batching { max_queue_delay_microseconds: 100 }")
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert config.dynamic_batching.max_queue_delay_microseconds == 100


def test_partial_config_keeps_its_inputs():
    config = parse('input [{ name: "x" data_type: TYPE_FP32 dims: [ -1 ] }]')
    complete_from_model(config, BATCHING_IN, BATCHING_OUT, 4, "m")
    assert [t.name for t in config.input] == ["x"] and list(config.input[0].dims) == [-1]
    assert [t.name for t in config.output] == ["y"]


def test_unsupported_type_is_refused():
    with pytest.raises(TritonError) as caught:
        complete_from_model(parse(), [OnnxTensor("x", "tensor(bfloat16)", (-1,))], [], 4, "m")
    assert caught.value.message == "unable to autofill for 'm', unsupported data-type 'bfloat16'"


def test_default_max_batch_size_setting():
    assert default_max_batch_size({}) == 4
    assert default_max_batch_size({"": {"default-max-batch-size": "6"}}) == 6
    assert (
        default_max_batch_size({"onnxruntime": {"default-max-batch-size": "8"}, "": {"default-max-batch-size": "6"}})
        == 8
    )
    with pytest.raises(TritonError):
        default_max_batch_size({"onnxruntime": {"default-max-batch-size": "many"}})


@pytest.mark.parametrize(
    ("text", "files", "backend", "platform", "filename"),
    [
        ("", ["model.onnx"], "onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ("", ["model.pt"], "pytorch", "pytorch_libtorch", "model.pt"),
        ("", ["model.plan"], "tensorrt", "tensorrt_plan", "model.plan"),
        ('platform: "onnxruntime_onnx"', [], "onnxruntime", "onnxruntime_onnx", "model.onnx"),
        ('backend: "pytorch"', [], "pytorch", "pytorch_libtorch", "model.pt"),
        ('default_model_filename: "model.plan"', [], "tensorrt", "tensorrt_plan", "model.plan"),
        (
            'backend: "onnxruntime" default_model_filename: "net.onnx"',
            [],
            "onnxruntime",
            "onnxruntime_onnx",
            "net.onnx",
        ),
        ("", ["model.py"], "", "", ""),
        ('backend: "python"', ["model.onnx"], "python", "", ""),
    ],
)
def test_backend_detection(tmp_path, text, files, backend, platform, filename):
    version = tmp_path / "1"
    version.mkdir()
    for name in files:
        (version / name).write_bytes(b"")
    config = complete_backend_fields(parse(text), version)
    assert (config.backend, config.platform, config.default_model_filename) == (backend, platform, filename)


def test_folder_named_model_onnx_is_not_detected(tmp_path):
    (tmp_path / "1" / "model.onnx").mkdir(parents=True)  # Triton detects a model.onnx file only
    assert complete_backend_fields(parse(), tmp_path / "1").backend == ""


def test_auto_complete_reads_the_model(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx_models import add_sub, write_model

    folder = write_model(tmp_path, "m", add_sub())
    config = auto_complete(parse(), folder, folder / "1", {"onnxruntime": {"default-max-batch-size": "8"}})
    data = config_to_json(config)
    assert data["backend"] == "onnxruntime" and data["platform"] == "onnxruntime_onnx"
    assert data["max_batch_size"] == 8
    assert "dynamic_batching" in data
    assert [(t["name"], t["data_type"], t["dims"]) for t in data["input"]] == [
        ("INPUT0", "TYPE_FP32", [4]),
        ("INPUT1", "TYPE_FP32", [4]),
    ]
    assert [t["name"] for t in data["output"]] == ["OUTPUT0", "OUTPUT1"]


def test_auto_complete_skips_a_config_with_inputs_and_outputs(tmp_path):
    folder = tmp_path / "m"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(b"not even read")
    text = 'backend: "onnxruntime" input [{ name: "a" }] output [{ name: "b" }]'
    config = auto_complete(parse(text), folder, folder / "1", {})
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")


def test_auto_complete_of_a_corrupt_model_names_the_reason(tmp_path):
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "m"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(TritonError) as caught:
        auto_complete(parse(), folder, folder / "1", {})
    assert caught.value.message.startswith("onnx runtime error ")
