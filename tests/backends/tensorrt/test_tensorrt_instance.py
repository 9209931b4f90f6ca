"""TensorRTInstance.execute end to end on CPU: fake engine, fake CUDA memory, real batching code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import FakeMemory, doubling_engine, trt
from google.protobuf import text_format

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.tensorrt.backend import TensorRTInstance, complete_tensorrt_config, instance_group
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config, validate_config

CONFIG = """
platform: "tensorrt_plan"
max_batch_size: 16
input [{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }]
instance_group [{ kind: KIND_GPU profile: ["0", "1"] }]
"""


def make(config_text: str = CONFIG, kind: str = "GPU", engine=None, memory=None) -> TensorRTInstance:
    config = mc.ModelConfig()
    text_format.Parse(config_text, config)
    complete_config(config, "plan")
    validate_config(config, "plan")
    name = f"{config.instance_group[0].name}_0"  # as the model manager names instances
    spec = InstanceSpec("plan", 1, Path("/nonexistent/plan"), config, {}, name, kind, 3)
    memory = memory or FakeMemory()
    return TensorRTInstance(spec, trt=trt, memory=memory, engine=engine or doubling_engine(memory=memory))


def request(rid: str, data: np.ndarray, outputs=None) -> InferRequest:
    return InferRequest("plan", "", rid, [InferTensor("IN", "FP32", list(data.shape), data)], outputs)


def test_a_batch_runs_once_and_each_request_gets_its_rows():
    instance = make()
    rows = [np.full((n, 4), float(i), np.float32) for i, n in enumerate((1, 2, 1))]
    results = instance.execute([request(str(i), r) for i, r in enumerate(rows)])
    for i, result in enumerate(results):
        assert isinstance(result, InferResponse)
        np.testing.assert_array_equal(result.outputs[0].data, rows[i] * 2)
        assert result.outputs[0].shape == [rows[i].shape[0], 4]
    context = instance.engine.contexts[0]
    assert context.executions == 1 and context.shapes == {"IN": (4, 4)}
    assert context.profile_calls == [0]  # batch of 4 fits profile 0
    assert instance.memory.devices[-1] == 3  # the instance's GPU
    assert all(t > 0 for t in instance.timings)


def test_profile_switches_with_the_batch_and_buffers_grow_only_when_needed():
    memory = FakeMemory()
    config = CONFIG.replace("dims: [ 4 ]", "dims: [ 64 ]")
    instance = make(config, memory=memory, engine=doubling_engine(width=64, memory=memory))
    allocations = memory.allocations
    small = np.ones((1, 64), np.float32)  # 256 bytes
    big = np.ones((8, 64), np.float32)  # 2 KiB
    instance.execute([request("a", small)])
    assert memory.allocations == allocations + 2  # IN and OUT
    instance.execute([request("b", small)])
    assert memory.allocations == allocations + 2  # reused
    (result,) = instance.execute([request("c", big)])
    np.testing.assert_array_equal(result.outputs[0].data, big * 2)
    assert memory.allocations == allocations + 4  # both grown
    instance.execute([request("d", small)])
    assert memory.allocations == allocations + 4  # never shrunk
    assert instance.engine.contexts[0].profile_calls == [0, 1, 0]


def test_too_large_a_batch_fails_every_request_of_it():
    instance = make(CONFIG.replace('profile: ["0", "1"]', 'profile: ["0"]'))
    results = instance.execute([request("a", np.ones((3, 4), np.float32)), request("b", np.ones((3, 4), np.float32))])
    for result in results:
        assert isinstance(result, TritonError) and result.kind == ErrorKind.INVALID_ARG
        assert "no optimization profile of model 'plan' accepts the input shapes 'IN' [6,4]" in result.message


def test_reshape_between_config_and_engine_shapes():
    memory = FakeMemory()
    engine = doubling_engine(memory=memory, shape=(-1, 2, 2))
    config = CONFIG.replace("dims: [ 4 ] }]", "dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }]")
    instance = make(config, memory=memory, engine=engine)
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    (result,) = instance.execute([request("a", data)])
    assert engine.contexts[0].shapes == {"IN": (2, 2, 2)}
    assert result.outputs[0].shape == [2, 4]
    np.testing.assert_array_equal(result.outputs[0].data, data * 2)


def test_requested_outputs_and_finalize():
    instance = make()
    (result,) = instance.execute([request("a", np.ones((1, 4), np.float32), [RequestedOutput("OUT")])])
    assert [t.name for t in result.outputs] == ["OUT"]
    memory = instance.memory
    instance.finalize()
    assert memory.storage == {} and memory.streams == []


def test_cpu_instances_are_refused():
    with pytest.raises(TritonError) as caught:
        make(CONFIG.replace("KIND_GPU", "KIND_CPU"), kind="CPU")
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert "TensorRT backend supports only KIND_GPU instances" in caught.value.message


def test_instance_group_lookup():
    config = mc.ModelConfig()
    text_format.Parse('instance_group [{ name: "a" }, { name: "a_b" }]', config)
    assert instance_group(config, "a_b_0").name == "a_b"
    assert instance_group(config, "a_3").name == "a"
    assert instance_group(config, "zzz") is None


def test_auto_complete_makes_gpu_instances(tmp_path):
    config = complete_tensorrt_config(mc.ModelConfig(), tmp_path / "plan", None, {})
    assert [(g.name, mc.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [("plan", "KIND_GPU")]


def test_missing_tensorrt_is_unavailable_with_the_install_hint(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed")
    except ImportError:
        pass
    (tmp_path / "plan" / "1").mkdir(parents=True)
    (tmp_path / "plan" / "1" / "model.plan").write_bytes(b"engine")
    with pytest.raises(TritonError) as caught:
        complete_tensorrt_config(mc.ModelConfig(), tmp_path / "plan", tmp_path / "plan" / "1", {})
    assert caught.value.kind == ErrorKind.UNAVAILABLE
    assert "pip install tritonlite[tensorrt]" in caught.value.message
