"""The TensorRT backend's engine-independent logic, on CPU with fake engines (no tensorrt, no GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_tensorrt import DataType, FakeEngine, FakeMemory, doubling_engine, trt
from google.protobuf import text_format

from tritonlite.backends import complete_backend_fields
from tritonlite.backends.tensorrt.engine import (
    DeviceBuffers,
    EngineInfo,
    EngineTensor,
    byte_size,
    complete_from_engine,
    describe_engine,
    grown_capacity,
    max_batch_size,
    plan_bindings,
    select_profile,
)
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc


def parse(text: str = "") -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_describe_engine_reads_the_tensorrt_10_api():
    info = describe_engine(doubling_engine(), trt)
    assert info.tensors == [
        EngineTensor("IN", True, "FLOAT", (-1, 4)),
        EngineTensor("OUT", False, "FLOAT", (-1, 4)),
    ]
    assert info.profiles[1]["IN"] == ((5, 4), (8, 4), (16, 4))
    assert [t.config_type for t in info.tensors] == ["TYPE_FP32", "TYPE_FP32"]


def test_max_batch_size_from_profiles():
    info = describe_engine(doubling_engine(), trt)
    assert max_batch_size(info, [0]) == 4
    assert max_batch_size(info, [1]) == 16
    assert max_batch_size(info, [0, 1]) == 16
    static = EngineInfo([EngineTensor("x", True, "FLOAT", (1, 4)), EngineTensor("y", False, "FLOAT", (1, 4))])
    assert max_batch_size(static, [0]) == 0  # no dynamic first dimension: no batching


def test_max_batch_is_the_smallest_input_max():
    info = EngineInfo(
        [
            EngineTensor("a", True, "FLOAT", (-1, 2)),
            EngineTensor("b", True, "HALF", (-1,)),
            EngineTensor("c", False, "FLOAT", (-1,)),
        ],
        [{"a": ((1, 2), (4, 2), (32, 2)), "b": ((1,), (4,), (8,))}],
    )
    assert max_batch_size(info, [0]) == 8


def test_auto_complete_from_the_engine():
    config = parse()
    complete_from_engine(config, describe_engine(doubling_engine(), trt), "plan")
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [("IN", "TYPE_FP32", [4])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("OUT", [4])]


def test_auto_complete_uses_the_instance_groups_profiles():
    config = parse('instance_group [{ kind: KIND_GPU profile: ["0", "1"] }]')
    complete_from_engine(config, describe_engine(doubling_engine(), trt), "plan")
    assert config.max_batch_size == 16
    with pytest.raises(TritonError) as caught:
        complete_from_engine(parse('instance_group [{ profile: ["2"] }]'), describe_engine(doubling_engine(), trt), "p")
    assert "configuration specified invalid profile 2" in caught.value.message


def test_auto_complete_keeps_explicit_values_and_checks_the_max_batch():
    config = parse('max_batch_size: 2 input [{ name: "IN" dims: [ -1 ] }] sequence_batching {}')
    complete_from_engine(config, describe_engine(doubling_engine(), trt), "plan")
    assert config.max_batch_size == 2 and not config.HasField("dynamic_batching")
    assert mc.DataType.Name(config.input[0].data_type) == "TYPE_FP32" and list(config.input[0].dims) == [-1]
    with pytest.raises(TritonError) as caught:
        complete_from_engine(parse("max_batch_size: 64"), describe_engine(doubling_engine(), trt), "plan")
    assert caught.value.message == (
        "autofill failed for model 'plan': configuration specified max-batch 64 but TensorRT engine only supports "
        "max-batch 4"
    )


def test_auto_complete_of_a_scalar_per_item_output():
    engine = FakeEngine(
        [("x", True, DataType.FLOAT, (-1, 3)), ("score", False, DataType.FLOAT, (-1,))],
        [{"x": ((1, 3), (1, 3), (8, 3))}],
        compute=None,
        output_shape=None,
    )
    config = parse()
    complete_from_engine(config, describe_engine(engine, trt), "m")
    score = config.output[0]
    assert list(score.dims) == [1] and score.HasField("reshape") and list(score.reshape.shape) == []


GOOD_BINDINGS = (
    'max_batch_size: 4 input [{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }] '
    'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }]'
)


def test_plan_bindings():
    bindings = plan_bindings(parse(GOOD_BINDINGS), describe_engine(doubling_engine(), trt), "m")
    assert [(b.name, b.is_input, b.dtype) for b in bindings] == [("IN", True, np.float32), ("OUT", False, np.float32)]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"IN" data_type: TYPE_FP32',
            '"IN" data_type: TYPE_FP16',
            "unable to load model 'm', configuration expects datatype TYPE_FP16 for input 'IN', model provides "
            "TYPE_FP32",
        ),
        ('name: "OUT"', 'name: "OTHER"', "unexpected inference output 'OTHER', allowed outputs are: OUT"),
        (
            "max_batch_size: 4",
            "max_batch_size: 0",
            "model 'm', tensor 'IN': the model expects 2 dimensions (shape [-1,4]) but the model configuration "
            "specifies 1 dimensions (shape [4])",
        ),
        (
            'input [{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }] ',
            "",
            "unable to load model 'm', configuration expects 0 inputs, model provides 1",
        ),
    ],
)
def test_plan_bindings_refuses_a_config_that_does_not_match(old, new, message):
    assert old in GOOD_BINDINGS
    with pytest.raises(TritonError) as caught:
        plan_bindings(parse(GOOD_BINDINGS.replace(old, new)), describe_engine(doubling_engine(), trt), "m")
    assert caught.value.message == message


def test_plan_bindings_with_reshape():
    info = describe_engine(doubling_engine(shape=(-1, 2, 2)), trt)
    config = parse(
        'max_batch_size: 4 input [{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }] '
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }]'
    )
    bindings = plan_bindings(config, info, "m")
    assert bindings[0].dims == (4,) and bindings[0].model_dims == (2, 2)


@pytest.mark.parametrize(
    ("rows", "allowed", "profile"),
    [(1, [0], 0), (2, [0, 1], 0), (4, [0, 1], 0), (5, [0, 1], 1), (16, [1], 1), (3, [1, 0], 0)],
)
def test_select_profile(rows, allowed, profile):
    info = describe_engine(doubling_engine(), trt)
    assert select_profile(info, {"IN": (rows, 4)}, allowed, "m") == profile


def test_select_profile_prefers_the_closest_opt():
    info = EngineInfo(
        [EngineTensor("IN", True, "FLOAT", (-1, 4))],
        [{"IN": ((1, 4), (1, 4), (16, 4))}, {"IN": ((1, 4), (12, 4), (16, 4))}],
    )
    assert select_profile(info, {"IN": (2, 4)}, [0, 1], "m") == 0
    assert select_profile(info, {"IN": (10, 4)}, [0, 1], "m") == 1


def test_no_profile_fits():
    info = describe_engine(doubling_engine(), trt)
    with pytest.raises(TritonError) as caught:
        select_profile(info, {"IN": (20, 4)}, [0, 1], "m")
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert "'IN' [20,4]" in caught.value.message and "profile 1: 'IN' [5,4] to [16,4]" in caught.value.message
    with pytest.raises(TritonError):
        select_profile(info, {"IN": (2, 5)}, [0], "m")


def test_buffer_sizes_and_growth():
    assert byte_size((3, 4), np.dtype(np.float32)) == 48
    with pytest.raises(TritonError):
        byte_size((-1, 4), np.dtype(np.float32))
    assert grown_capacity(0, 1) == 256
    assert grown_capacity(256, 200) == 256
    assert grown_capacity(256, 300) == 512
    assert grown_capacity(512, 5000) == 5120


def test_device_buffers_are_reused_and_grown():
    memory = FakeMemory()
    buffers = DeviceBuffers(memory)
    first = buffers.ensure("x", 100)
    assert buffers.ensure("x", 256) == first and memory.allocations == 1
    second = buffers.ensure("x", 1000)
    assert memory.allocations == 2 and memory.frees == 1 and second != first
    assert buffers.ensure("x", 10) == second
    buffers.ensure("y", 0)
    buffers.release()
    assert memory.storage == {} and buffers.buffers == {}


def test_model_plan_alone_is_detected_as_tensorrt(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.plan").write_bytes(b"")
    config = complete_backend_fields(parse(), tmp_path / "1")
    assert (config.backend, config.platform, config.default_model_filename) == (
        "tensorrt",
        "tensorrt_plan",
        "model.plan",
    )
