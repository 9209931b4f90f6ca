"""Repositories for the in-process API's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
TEST_REPOSITORY = TESTS / "data" / "repository"
EXAMPLES = TESTS.parent / "examples" / "model_repository"

# decoupled: response 0, then waits for the file "gate<IN>" in its model folder before response 1
# and the final flag; a gate that never opens (30 s) ends the request with an error instead
GATED = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.folder = args["model_repository"]

    def execute(self, requests):
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        for request in requests:
            number = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
            gate = os.path.join(self.folder, f"gate{number}")
            sender = request.get_response_sender()
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([0], np.int32))]))
            deadline = time.monotonic() + 30
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
            if not os.path.exists(gate):
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("gate never opened")), flags=final)
                continue
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([1], np.int32))]))
            sender.send(flags=final)
        return None
"""

GATED_CONFIG = """
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }]
output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]
instance_group [{ kind: KIND_CPU count: 2 }]
"""

# BLS: OUTPUT0 = add_sub(INPUT0, INPUT0).OUTPUT0
BLS = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            answer = pb_utils.InferenceRequest(
                model_name="add_sub",
                requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", x)],
            ).exec()
            if answer.has_error():
                responses.append(pb_utils.InferenceResponse(error=answer.error()))
                continue
            doubled = pb_utils.get_output_tensor_by_name(answer, "OUTPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", doubled)]))
        return responses
"""

BLS_CONFIG = """
backend: "python"
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
"""


def write_model(root: Path, name: str, config: str, code: str) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(config)
    (root / name / "1" / "model.py").write_text(code)


def build_repository(root: Path) -> Path:
    """add_sub, string_upper, exec_fails, identity_fp16, repeat_decoupled, gated and bls_double."""
    for name in ("add_sub", "string_upper", "exec_fails", "identity_fp16"):
        shutil.copytree(TEST_REPOSITORY / name, root / name)
    shutil.copytree(EXAMPLES / "repeat_decoupled", root / "repeat_decoupled")
    write_model(root, "gated", GATED_CONFIG, GATED)
    write_model(root, "bls_double", BLS_CONFIG, BLS)
    return root
