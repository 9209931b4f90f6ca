"""The real TensorRT path: build a small engine, serve it from a KIND_GPU instance.

Needs tensorrt (10+), onnx, a CUDA binding (cuda-python or cupy) and a GPU; skips cleanly otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt")
if not hasattr(trt, "Builder"):
    pytest.skip("tensorrt is not a real TensorRT installation", allow_module_level=True)
onnx = pytest.importorskip("onnx")

from tritonlite.backends import auto_complete, create_instance  # noqa: E402
from tritonlite.backends.base import InstanceSpec  # noqa: E402
from tritonlite.core.errors import TritonError  # noqa: E402
from tritonlite.core.types import InferRequest, InferTensor  # noqa: E402
from tritonlite.protocol import model_config_pb2 as mc  # noqa: E402
from tritonlite.repository.config import complete_config, validate_config  # noqa: E402


def _gpu_memory():
    from tritonlite.backends.tensorrt.cuda import load_memory

    try:
        memory = load_memory()
        memory.set_device(0)
        return memory
    except TritonError as exc:
        pytest.skip(f"no usable GPU: {exc.message}")


def build_plan(path: Path) -> None:
    """OUT = IN + IN for IN [-1, 4] FP32, one profile for batches 1..8."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["IN", "IN"], ["OUT"])],
        "g",
        [helper.make_tensor_value_info("IN", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("IN", (1, 4), (4, 4), (8, 4))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    path.write_bytes(bytes(plan))


def test_engine_from_a_plan_file_on_the_gpu(tmp_path):
    _gpu_memory()
    folder = tmp_path / "plan"
    (folder / "1").mkdir(parents=True)
    build_plan(folder / "1" / "model.plan")
    config = auto_complete(mc.ModelConfig(), folder, folder / "1", {})
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8
    assert [t.name for t in config.input] == ["IN"] and list(config.input[0].dims) == [4]
    complete_config(config, "plan")
    validate_config(config, "plan")
    spec = InstanceSpec("plan", 1, folder, config, {}, f"{config.instance_group[0].name}_0", "GPU", 0)
    instance = create_instance("tensorrt", spec)
    try:
        rows = [np.arange(4 * n, dtype=np.float32).reshape(n, 4) for n in (1, 3, 2)]
        results = instance.execute(
            [
                InferRequest("plan", "", str(i), [InferTensor("IN", "FP32", list(r.shape), r)])
                for i, r in enumerate(rows)
            ]
        )
        for row, result in zip(rows, results, strict=True):
            np.testing.assert_array_equal(result.outputs[0].data, row * 2)
        big = np.ones((8, 4), np.float32)
        (result,) = instance.execute([InferRequest("plan", "", "big", [InferTensor("IN", "FP32", [8, 4], big)])])
        np.testing.assert_array_equal(result.outputs[0].data, big * 2)
    finally:
        instance.finalize()
