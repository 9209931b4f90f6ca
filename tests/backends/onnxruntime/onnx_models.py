"""Small ONNX models built with onnx.helper for the ONNX Runtime backend tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from tritonlite.backends.base import InstanceSpec
from tritonlite.core.config_json import config_to_json
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config, validate_config

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime the extras allow


def _model(nodes, inputs, outputs, initializers=()):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def add_sub(batch="batch", width=4, elem="FLOAT"):
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, shape [batch, width]."""
    from onnx import TensorProto, helper

    kind = getattr(TensorProto, elem)
    shape = [batch, width] if batch is not None else [width]
    return _model(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        [helper.make_tensor_value_info("INPUT0", kind, shape), helper.make_tensor_value_info("INPUT1", kind, shape)],
        [helper.make_tensor_value_info("OUTPUT0", kind, shape), helper.make_tensor_value_info("OUTPUT1", kind, shape)],
    )


def identity(elem="FLOAT", shape=("batch", 2), name_in="IN", name_out="OUT"):
    from onnx import TensorProto, helper

    kind = getattr(TensorProto, elem)
    return _model(
        [helper.make_node("Identity", [name_in], [name_out])],
        [helper.make_tensor_value_info(name_in, kind, list(shape))],
        [helper.make_tensor_value_info(name_out, kind, list(shape))],
    )


def scale_with_weights(width=4):
    """OUT = IN * W where W is an initializer (saved as external data for the folder test)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(width, dtype=np.float32) + 1, name="W")
    return _model(
        [helper.make_node("Mul", ["IN", "W"], ["OUT"])],
        [helper.make_tensor_value_info("IN", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch", width])],
        [weights],
    )


def reduce_sum_rows():
    """OUT[b] = sum(IN[b, :]): a per-batch-item scalar output ([batch])."""
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    return _model(
        [helper.make_node("ReduceSum", ["IN", "axes"], ["OUT"], keepdims=0)],
        [helper.make_tensor_value_info("IN", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("OUT", TensorProto.FLOAT, ["batch"])],
        [axes],
    )


def write_model(root: Path, name: str, model, config: str | None = None, version: int = 1) -> Path:
    import onnx

    folder = root / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / str(version) / "model.onnx"))
    if config is not None:
        (folder / "config.pbtxt").write_text(config)
    return folder


def make_spec(folder: Path, config_text: str, kind: str = "CPU", device: int = 0, settings=None) -> InstanceSpec:
    """An InstanceSpec for the model in ``folder`` with the config completed and validated as the server does."""
    config = mc.ModelConfig()
    text_format.Parse(config_text, config)
    complete_config(config, folder.name)
    validate_config(config, folder.name)
    return InstanceSpec(
        model_name=folder.name,
        version=1,
        model_path=folder,
        config=config,
        config_json=config_to_json(config),
        instance_name=f"{folder.name}_0",
        kind=kind,
        device_id=device,
        backend_settings=settings or {},
    )
