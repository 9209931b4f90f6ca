"""Writes examples/onnx_model_repository/*/1/model.onnx: a small MLP classifier (16 -> 32 -> 4).

    .venv/bin/python scripts/make_onnx_example.py

Needs the `onnx` package (in the test extra). The weights come from a fixed seed, so the file is
the same every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1] / "examples" / "onnx_model_repository"


def mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "W1")
    b1 = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "B1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "W2")
    b2 = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B2")
    nodes = [
        helper.make_node("MatMul", ["INPUT0", "W1"], ["H0"]),
        helper.make_node("Add", ["H0", "B1"], ["H1"]),
        helper.make_node("Relu", ["H1"], ["H2"]),
        helper.make_node("MatMul", ["H2", "W2"], ["H3"]),
        helper.make_node("Add", ["H3", "B2"], ["OUTPUT0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 4])],
        [w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tritonlite")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    data = mlp().SerializeToString()
    for name in ("mlp", "mlp_autoconfig"):
        (ROOT / name / "1").mkdir(parents=True, exist_ok=True)
        (ROOT / name / "1" / "model.onnx").write_bytes(data)


if __name__ == "__main__":
    main()
