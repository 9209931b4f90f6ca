"""A python model's output that its config does not declare never reaches the client.

Expected values were captured from Triton 2.51.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from python_models import python_models_server
from tritonclient.utils import InferenceServerException

TENSORS = '[pb_utils.Tensor("OUTPUT0", x), pb_utils.Tensor("UNDECLARED", x * 2)]'

CONFIG = (
    'name: "extra" backend: "python" max_batch_size: 0 input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }] '
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }]'
)


server = python_models_server({"extra": (CONFIG, TENSORS)})


INPUTS = [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, 2]}]
ONLY_DECLARED = {
    "model_name": "extra",
    "model_version": "1",
    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}],
}


@pytest.mark.parametrize("outputs", [None, [{"name": "OUTPUT0"}]])
def test_http_drops_the_undeclared_output(server, outputs):
    body = {"inputs": INPUTS} if outputs is None else {"inputs": INPUTS, "outputs": outputs}
    answer = requests.post(f"http://{server.http}/v2/models/extra/infer", json=body)
    assert answer.status_code == 200  # captured from Triton 2.51
    assert answer.json() == ONLY_DECLARED


def test_http_request_for_the_undeclared_output_is_refused(server):
    body = {"inputs": INPUTS, "outputs": [{"name": "UNDECLARED"}]}
    answer = requests.post(f"http://{server.http}/v2/models/extra/infer", json=body)
    assert answer.status_code == 400  # captured from Triton 2.51
    assert answer.json() == {"error": "unexpected inference output 'UNDECLARED' for model 'extra'"}


def test_grpc_drops_the_undeclared_output_and_refuses_a_request_for_it(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    tensor = grpcclient.InferInput("INPUT0", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1, 2], dtype=np.float32))
    result = client.infer("extra", [tensor])
    assert [out.name for out in result.get_response().outputs] == ["OUTPUT0"]  # captured from Triton 2.51
    with pytest.raises(InferenceServerException) as info:
        client.infer("extra", [tensor], outputs=[grpcclient.InferRequestedOutput("UNDECLARED")])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message() == "unexpected inference output 'UNDECLARED' for model 'extra'"
