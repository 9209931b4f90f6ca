"""A string sequence id given to a model whose CONTROL_SEQUENCE_CORRID is numeric, over HTTP and gRPC.

Expected values captured from Triton 2.51 (the real server, python backend, a model that echoes its
CORRID control): Triton does not hash the id; it serializes it as one BYTES element (4-byte little-endian
length, then the UTF-8 bytes) and the numeric control holds that buffer's first bytes, zero-padded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from serverutil import RunningServer

ECHO = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "CORR", pb_utils.get_input_tensor_by_name(r, "CORRID").as_numpy().reshape(1, 1))]) for r in requests]
"""

CONFIG = """backend: "python"
max_batch_size: 4
input [{{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }}]
output [{{ name: "CORR" data_type: TYPE_{type} dims: [ 1 ] }}]
sequence_batching {{ direct {{ }}
  control_input [{{ name: "CORRID" control [{{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_{type} }}] }}]
}}
"""

# (model, sequence id) -> the CORRID the model saw, captured from Triton 2.51.
CAPTURED = {
    ("seq_uint64", "seq-abc"): 3274509948670705671,  # 0x2d717365_00000007: length 7, then "seq-"
    ("seq_uint64", "a"): 416611827713,  # 0x61_00000001
    ("seq_uint64", "hello world"): 7812730950931972107,  # 0x6c6c6568_0000000b
    ("seq_uint64", "12"): 55186034786306,  # 0x3231_00000002
    ("seq_uint64", 7): 7,
    ("seq_uint32", "seq-abc"): 7,  # only the length fits
    ("seq_uint32", "a"): 1,
    ("seq_uint32", "hé"): 3,  # the UTF-8 length
    ("seq_int64", "seq-abc"): 3274509948670705671,
    ("seq_int64", "hé"): 47784122508115971,  # 0xa9c368_00000003
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("string_corrid")
    for type_ in ("UINT64", "UINT32", "INT64"):
        folder = root / f"seq_{type_.lower()}"
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(CONFIG.format(type=type_))
        (folder / "1" / "model.py").write_text(ECHO)
    running = RunningServer([root])
    yield running
    running.stop()


def http_corrid(server, model: str, sequence_id, **flags) -> int:
    body = {
        "inputs": [{"name": "INPUT", "datatype": "INT32", "shape": [1, 1], "data": [1]}],
        "parameters": {"sequence_id": sequence_id, **flags},
    }
    response = requests.post(f"http://{server.http}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["outputs"][0]["data"][0]


def test_a_string_id_reaches_a_numeric_corrid_as_triton_fills_it(server):
    for (model, sequence_id), expected in CAPTURED.items():
        got = http_corrid(server, model, sequence_id, sequence_start=True, sequence_end=True)
        assert got == expected, (model, sequence_id)


def test_every_request_of_a_string_sequence_sees_the_same_non_zero_corrid(server):
    seen = [
        http_corrid(server, "seq_uint64", "seq-abc", sequence_start=True),
        http_corrid(server, "seq_uint64", "seq-abc"),
        http_corrid(server, "seq_uint64", "seq-abc", sequence_end=True),
    ]
    assert seen == [3274509948670705671] * 3


def test_grpc_string_id_gives_the_same_corrid(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    tensor = grpcclient.InferInput("INPUT", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.ones((1, 1), np.int32))
    result = client.infer("seq_uint64", [tensor], sequence_id="seq-abc", sequence_start=True, sequence_end=True)
    assert int(result.as_numpy("CORR")[0, 0]) == 3274509948670705671
