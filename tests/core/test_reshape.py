"""The config's ``reshape``: the model sees it, the client sees the config's dims.

Expected values were captured from Triton 2.51 (python backend model below, HTTP and gRPC).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from python_models import python_models_server

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.reshape import to_config_shape, to_model_shape
from tritonlite.core.validation import TensorSpec

# the model returns OUTPUT0 flat and, as SEEN, the shape it was given
TENSORS = '[pb_utils.Tensor("OUTPUT0", x.reshape(-1)), pb_utils.Tensor("SEEN", np.array(x.shape, dtype=np.int64))]'


def _config(name: str, max_batch_size: int) -> str:
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 6 ] reshape: { shape: [ 2, 3 ] } }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 2, 3 ] reshape: { shape: [ 6 ] } },'
        ' { name: "SEEN" data_type: TYPE_INT64 dims: [ -1 ] }]\n'
    )


server = python_models_server(
    {name: (_config(name, size), TENSORS) for name, size in (("reshape", 0), ("reshape_b", 4))}
)


X = list(range(6))


def test_http_client_sends_dims_model_sees_reshape_client_gets_dims(server):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [6], "data": X}]}
    answer = requests.post(f"http://{server.http}/v2/models/reshape/infer", json=body)
    # captured from Triton 2.51
    assert answer.status_code == 200
    assert answer.json() == {
        "model_name": "reshape",
        "model_version": "1",
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [2, 3], "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]},
            {"name": "SEEN", "datatype": "INT64", "shape": [2], "data": [2, 3]},
        ],
    }


def test_http_input_in_the_reshape_shape_is_refused(server):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2, 3], "data": X}]}
    answer = requests.post(f"http://{server.http}/v2/models/reshape/infer", json=body)
    # captured from Triton 2.51
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'reshape'. "
        "Expected [6], got [2,3]. "
    }


def test_grpc_gives_the_config_dims(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    tensor = grpcclient.InferInput("INPUT0", [6], "FP32")
    tensor.set_data_from_numpy(np.arange(6, dtype=np.float32))
    result = client.infer("reshape", [tensor])
    # captured from Triton 2.51: OUTPUT0 shape [2, 3], SEEN [2, 3]
    assert [list(out.shape) for out in result.get_response().outputs] == [[2, 3], [2]]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(result.as_numpy("SEEN"), [2, 3])


def test_batched_output_that_loses_its_batch_dimension_fails(server):
    # the model flattens [1, 2, 3] to [6]: Triton takes 6 as the batch, gives dims [6, 2, 3] and
    # refuses the data (captured from Triton 2.51 over HTTP; its gRPC sends the shape with 6 elements)
    body = {
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 6], "data": X}],
        "outputs": [{"name": "OUTPUT0"}],
    }
    answer = requests.post(f"http://{server.http}/v2/models/reshape_b/infer", json=body)
    assert answer.status_code == 500
    assert answer.json() == {"error": "output tensor shape does not match size of output for 'OUTPUT0'"}


SPEC = TensorSpec("T", "FP32", (2, -1), reshape=(-1, 2))


def test_model_shape_and_back_with_a_batch():
    data = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    model = to_model_shape(data, SPEC, batched=True)
    assert model.shape == (2, 3, 2)
    assert to_config_shape(model, SPEC, batched=True).shape == (2, 2, 3)


def test_config_shape_takes_variable_sizes_from_the_reshape_positions():
    # Triton's Output::Reshape: dims' -1 take the model's sizes where reshape has -1
    assert to_config_shape(np.zeros((4, 2)), SPEC, batched=False).shape == (2, 4)


def test_config_shape_that_the_data_cannot_fill_is_an_error():
    with pytest.raises(TritonError) as info:
        to_config_shape(np.zeros(6), TensorSpec("T", "FP32", (2, 3), reshape=(6,)), batched=True)
    assert info.value.kind is ErrorKind.INTERNAL
    assert info.value.message == "output tensor shape does not match size of output for 'T'"
