"""Decoupled models through a real server: gRPC streaming with tritonclient (N responses, N = 0
included, the final flag, in-stream errors), the HTTP refusal, and BLS calls from a python model."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

REPEAT = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)[0])
            sender = request.get_response_sender()
            if n < 0:
                error = pb_utils.TritonError("negative count")
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                sender.send(pb_utils.InferenceResponse(error=error), flags=final)
                continue
            for i in range(n):
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

DOUBLE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "COUNT").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", (2 * x).astype(np.int32))]))
        return out
"""

# BLS: OUT = double(COUNT) + the sum of everything repeat(COUNT) streams back
BLS = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            count = pb_utils.get_input_tensor_by_name(r, "COUNT")
            doubled = pb_utils.InferenceRequest(
                model_name="double", inputs=[count], requested_output_names=["OUT"]).exec()
            if doubled.has_error():
                raise pb_utils.TritonModelException(doubled.error().message())
            total = int(pb_utils.get_output_tensor_by_name(doubled, "OUT").as_numpy()[0])
            responses = pb_utils.InferenceRequest(
                model_name="repeat", inputs=[count], requested_output_names=["OUT"]).exec(decoupled=True)
            seen = 0
            for response in responses:
                if response.has_error():
                    raise pb_utils.TritonModelException(response.error().message())
                if len(response.output_tensors()):
                    total += int(pb_utils.get_output_tensor_by_name(response, "OUT").as_numpy()[0])
                    seen += 1
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([total * 1000 + seen], np.int32))]))
        return out
"""


def model(root: Path, name: str, code: str, decoupled: bool = False) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(code)
    policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
    (folder / "config.pbtxt").write_text(
        f'backend: "python"\n{policy}input [{{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }}]\n'
        'output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoupled")
    model(root, "repeat", REPEAT, decoupled=True)
    model(root, "double", DOUBLE)
    model(root, "bls", BLS)
    running = RunningServer([root])
    yield running
    running.stop()


def count(n: int) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("COUNT", [1], "INT32")
    tensor.set_data_from_numpy(np.array([n], np.int32))
    return tensor


class Stream:
    def __init__(self, server) -> None:
        self.client = grpcclient.InferenceServerClient(server.grpc)
        self.results: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def get(self, timeout: float = 10.0):
        result, error = self.results.get(timeout=timeout)
        if error is not None:
            return ("error", error.message())
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        values = result.as_numpy("OUT")
        return (response.id, None if values is None else int(values[0]), final)

    def nothing_more(self, wait: float = 0.3) -> bool:
        try:
            self.results.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.stop_stream()


@pytest.mark.parametrize("n", [0, 1, 4])
def test_n_responses_then_the_final_flag(server, n):
    stream = Stream(server)
    try:
        stream.client.async_stream_infer("repeat", [count(n)], request_id="plain")
        got = [stream.get() for _ in range(n)]
        assert got == [("plain", i, False) for i in range(n)]
        assert stream.nothing_more()  # the final flag alone is not sent unless asked for
        stream.client.async_stream_infer("repeat", [count(n)], request_id="empty", enable_empty_final_response=True)
        got = [stream.get() for _ in range(n + 1)]
        assert got == [("empty", i, False) for i in range(n)] + [("empty", None, True)]
    finally:
        stream.close()


def test_many_requests_share_a_stream_and_errors_stay_in_it(server):
    stream = Stream(server)
    try:
        stream.client.async_stream_infer("repeat", [count(-1)], request_id="bad")
        assert stream.get() == ("error", "negative count")
        stream.client.async_stream_infer("nope", [count(1)], request_id="unknown")
        assert stream.get() == ("error", "Request for unknown model: 'nope' is not found")
        for i in range(5):
            stream.client.async_stream_infer("repeat", [count(3)], request_id=f"r{i}")
        stream.client.async_stream_infer("double", [count(21)], request_id="d")
        got = [stream.get() for _ in range(16)]
        assert ("d", 42, True) in got
        for i in range(5):
            assert [g[1] for g in got if g[0] == f"r{i}"] == [0, 1, 2]
    finally:
        stream.close()


def test_http_infer_of_a_decoupled_model_is_refused_as_in_triton(server):
    body = {"inputs": [{"name": "COUNT", "datatype": "INT32", "shape": [1], "data": [2]}]}
    answer = requests.post(f"http://{server.http}/v2/models/repeat/infer", json=body, timeout=10)
    assert (answer.status_code, answer.json()) == (
        501,
        {"error": "HTTP end point doesn't support models with decoupled transaction policy"},
    )


def test_grpc_model_infer_of_a_decoupled_model_is_refused_as_in_triton(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    with pytest.raises(InferenceServerException) as info:
        client.infer("repeat", [count(2)])
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
    assert info.value.message() == "ModelInfer RPC doesn't support models with decoupled transaction policy"


def test_bls_calls_a_model_and_a_decoupled_model(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    result = client.infer("bls", [count(4)])
    assert int(result.as_numpy("OUT")[0]) == (8 + 0 + 1 + 2 + 3) * 1000 + 4
    result = client.infer("bls", [count(0)])
    assert int(result.as_numpy("OUT")[0]) == 0


def _sse(server, model: str, value: int, stream: bool):
    path = "generate_stream" if stream else "generate"
    return requests.post(f"http://{server.http}/v2/models/{model}/{path}", json={"COUNT": value}, timeout=10)


def test_generate_stream_sends_every_response_as_triton(server):
    # Triton 2.51 (tests/reference_data/ensembles_sequences_streaming/stream_triton.json)
    answer = _sse(server, "repeat", 3, stream=True)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text == "".join(
        f'data: {{"OUT":{i},"model_name":"repeat","model_version":"1"}}\n\n' for i in range(3)
    )
    assert _sse(server, "repeat", 0, stream=True).text == ""


def test_generate_expects_exactly_one_response_as_triton(server):
    answer = _sse(server, "repeat", 3, stream=False)
    assert answer.status_code == 200
    assert answer.json() == {
        "error": "generate expects model to produce exactly 1 response, use generate stream for model that "
        "generates various number of responses"
    }


def test_generate_on_a_regular_model_returns_one_flat_answer(server):
    answer = _sse(server, "double", 21, stream=False)
    assert answer.status_code == 200 and answer.text == '{"OUT":42,"model_name":"double","model_version":"1"}'
    assert (
        _sse(server, "double", 21, stream=True).text == 'data: {"OUT":42,"model_name":"double","model_version":"1"}\n\n'
    )
