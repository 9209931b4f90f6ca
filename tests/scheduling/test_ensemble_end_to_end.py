"""Ensembles through a real server and the real tritonclient (explicit mode, every model loaded)."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

# preprocess -> (classify, segment) in parallel; each branch reports when it ran
PREPROCESS = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            image = pb_utils.get_input_tensor_by_name(r, "IMAGE").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("PIXELS", (image / 255.0).astype(np.float32))]))
        return out
"""

BRANCH = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        started = time.time()
        time.sleep(0.3)
        ended = time.time()
        out = []
        for r in requests:
            pixels = pb_utils.get_input_tensor_by_name(r, "PIXELS").as_numpy()
            result = {result}
            when = np.array([[started, ended]] * pixels.shape[0], np.float64)
            tensors = [pb_utils.Tensor("{output}", result), pb_utils.Tensor("{when}", when)]
            out.append(pb_utils.InferenceResponse(tensors))
        return out
"""

REPEAT = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)[0])
            sender = request.get_response_sender()
            for i in range(n):
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

ADD = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", (x + 100).astype(x.dtype))]))
        return out
"""


def model(root: Path, name: str, config: str, code: str | None = None) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    if code is not None:
        (folder / "1" / "model.py").write_text(code)


def step(name: str, inputs: dict, outputs: dict) -> str:
    imap = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
    omap = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
    return f'step [{{ model_name: "{name}" model_version: -1 {imap} {omap} }}]\n'


PIPELINE_IO = """
input [{ name: "IMAGE" data_type: TYPE_UINT8 dims: [ 4 ] }]
output [
  { name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "MASK" data_type: TYPE_BOOL dims: [ 4 ] },
  { name: "CLASSIFY_WHEN" data_type: TYPE_FP64 dims: [ 2 ] }, { name: "SEGMENT_WHEN" data_type: TYPE_FP64 dims: [ 2 ] }
]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensembles")
    batched = "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n"
    model(
        root,
        "preprocess",
        f'backend: "python"\n{batched}input [{{ name: "IMAGE" data_type: TYPE_UINT8 dims: [ 4 ] }}]\n'
        'output [{ name: "PIXELS" data_type: TYPE_FP32 dims: [ 4 ] }]\n',
        PREPROCESS,
    )
    for name, output, dtype, dims, result in (
        ("classify", "SCORE", "TYPE_FP32", 1, "pixels.mean(axis=1, keepdims=True).astype(np.float32)"),
        ("segment", "MASK", "TYPE_BOOL", 4, "pixels > 0.5"),
    ):
        model(
            root,
            name,
            f'backend: "python"\n{batched}input [{{ name: "PIXELS" data_type: TYPE_FP32 dims: [ 4 ] }}]\n'
            f'output [{{ name: "{output}" data_type: {dtype} dims: [ {dims} ] }},'
            ' { name: "WHEN" data_type: TYPE_FP64 dims: [ 2 ] }]\n',
            BRANCH.replace("{result}", result).replace("{output}", output).replace("{when}", "WHEN"),
        )
    steps = (
        step("preprocess", {"IMAGE": "IMAGE"}, {"PIXELS": "pixels"})
        + step("classify", {"PIXELS": "pixels"}, {"SCORE": "SCORE", "WHEN": "CLASSIFY_WHEN"})
        + step("segment", {"PIXELS": "pixels"}, {"MASK": "MASK", "WHEN": "SEGMENT_WHEN"})
    )
    model(
        root, "pipeline", f'platform: "ensemble"\nmax_batch_size: 8\n{PIPELINE_IO}ensemble_scheduling {{\n{steps}}}\n'
    )
    model(
        root,
        "repeat",
        'backend: "python"\nmodel_transaction_policy { decoupled: true }\n'
        'input [{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n',
        REPEAT,
    )
    model(
        root,
        "add100",
        'backend: "python"\ninput [{ name: "X" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "Y" data_type: TYPE_INT32 dims: [ 1 ] }]\n',
        ADD,
    )
    io = (
        'input [{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "RESULT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
    )
    streamed = step("repeat", {"COUNT": "COUNT"}, {"OUT": "mid"}) + step("add100", {"X": "mid"}, {"Y": "RESULT"})
    model(root, "streamed", f'platform: "ensemble"\n{io}ensemble_scheduling {{\n{streamed}}}\n')
    model(root, "cycle", f'platform: "ensemble"\n{io}ensemble_scheduling {{\n'
          + step("add100", {"X": "COUNT"}, {"Y": "a"}) + step("add100", {"X": "b"}, {"Y": "c"})
          + step("add100", {"X": "c"}, {"Y": "b"}) + step("add100", {"X": "a"}, {"Y": "RESULT"}) + "}\n")  # fmt: skip
    model(root, "unknown_member", f'platform: "ensemble"\n{io}ensemble_scheduling {{\n'
          + step("nope", {"X": "COUNT"}, {"Y": "RESULT"}) + "}\n")  # fmt: skip
    model(root, "wrong_type", 'platform: "ensemble"\ninput [{ name: "COUNT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
          'output [{ name: "RESULT" data_type: TYPE_INT32 dims: [ 1 ] }]\nensemble_scheduling {\n'
          + step("add100", {"X": "COUNT"}, {"Y": "RESULT"}) + "}\n")  # fmt: skip
    running = RunningServer(
        [root, EXAMPLES], "--model-control-mode=explicit", "--load-model=*", "--exit-on-error=false"
    )
    yield running
    running.stop()


def image_input(images: np.ndarray) -> httpclient.InferInput:
    tensor = httpclient.InferInput("IMAGE", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    return tensor


def test_pipeline_equals_its_members_in_turn_and_branches_overlap(server):
    client = httpclient.InferenceServerClient(server.http)
    images = np.array([[0, 255, 128, 64], [255, 255, 0, 10]], np.uint8)
    result = client.infer("pipeline", [image_input(images)])
    pixels_in = httpclient.InferInput("PIXELS", [2, 4], "FP32")
    pixels = client.infer("preprocess", [image_input(images)]).as_numpy("PIXELS")
    pixels_in.set_data_from_numpy(pixels)
    np.testing.assert_array_equal(result.as_numpy("SCORE"), client.infer("classify", [pixels_in]).as_numpy("SCORE"))
    np.testing.assert_array_equal(result.as_numpy("MASK"), client.infer("segment", [pixels_in]).as_numpy("MASK"))
    assert result.as_numpy("MASK").tolist() == [[False, True, True, False], [True, True, False, False]]
    classify, segment = result.as_numpy("CLASSIFY_WHEN")[0], result.as_numpy("SEGMENT_WHEN")[0]
    assert classify[0] < segment[1] and segment[0] < classify[1], (classify, segment)  # the branches overlapped
    assert result.get_response()["parameters"] == {"sequence_id": 0, "sequence_start": False, "sequence_end": False}


def test_statistics_for_the_ensemble_and_each_member(server):
    client = httpclient.InferenceServerClient(server.http)
    before = {s["name"]: s for s in client.get_inference_statistics()["model_stats"]}
    client.infer("pipeline", [image_input(np.zeros((1, 4), np.uint8))])
    after = {s["name"]: s for s in client.get_inference_statistics()["model_stats"]}
    for name in ("pipeline", "preprocess", "classify", "segment"):
        done = after[name]["inference_stats"]["success"]["count"] - before[name]["inference_stats"]["success"]["count"]
        assert done == 1, name


def test_invalid_ensembles_are_unavailable_with_tritons_reasons(server):
    rows = {row["name"]: row for row in httpclient.InferenceServerClient(server.http).get_model_repository_index()}
    assert rows["cycle"]["state"] == "UNAVAILABLE"
    assert rows["cycle"]["reason"] == "ensemble tensor 'b' is unused in ensemble 'cycle'"
    assert rows["unknown_member"]["reason"] == (
        "ensemble unknown_member contains models that are not available or ambiguous: nope"
    )
    assert rows["wrong_type"]["reason"] == (
        "in ensemble wrong_type, ensemble tensor COUNT: inconsistent data type: TYPE_FP32 is inferred from model "
        "wrong_type while TYPE_INT32 is inferred from model add100"
    )
    answer = requests.post(f"http://{server.http}/v2/repository/models/unknown_member/load", timeout=30)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "load failed for model 'unknown_member': ensemble unknown_member contains models that are not "
            "available or ambiguous: nope\n"
        },
    )


def test_an_ensemble_with_a_decoupled_member_streams(server):
    client = grpcclient.InferenceServerClient(server.grpc)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        count = grpcclient.InferInput("COUNT", [1], "INT32")
        count.set_data_from_numpy(np.array([3], np.int32))
        client.async_stream_infer("streamed", [count], request_id="three")
        got = []
        for _ in range(3):
            result, error = results.get(timeout=10)
            assert error is None
            final = result.get_response().parameters["triton_final_response"].bool_param
            got.append((int(result.as_numpy("RESULT")[0]), final))
        assert [value for value, _ in got] == [100, 101, 102] and not got[0][1]
    finally:
        client.stop_stream()
    http = httpclient.InferenceServerClient(server.http)
    assert http.get_model_config("streamed")["model_transaction_policy"] == {"decoupled": True}
    count = httpclient.InferInput("COUNT", [1], "INT32")
    count.set_data_from_numpy(np.ones(1, np.int32))
    with pytest.raises(InferenceServerException, match="doesn't support models with decoupled transaction policy"):
        http.infer("streamed", [count])


def test_unloading_a_member_takes_the_ensemble_down_until_it_is_back(server):
    client = httpclient.InferenceServerClient(server.http)
    client.unload_model("segment")
    try:
        assert not client.is_model_ready("pipeline")
        with pytest.raises(InferenceServerException, match="Request for unknown model: 'pipeline' has no available"):
            client.infer("pipeline", [image_input(np.zeros((1, 4), np.uint8))])
        rows = {row["name"]: row for row in client.get_model_repository_index()}
        assert (rows["pipeline"]["state"], rows["pipeline"]["reason"]) == ("UNAVAILABLE", "unloaded")
    finally:
        client.load_model("segment")
    assert client.is_model_ready("pipeline")
    assert client.infer("pipeline", [image_input(np.zeros((1, 4), np.uint8))]).as_numpy("MASK").shape == (1, 4)


def test_the_example_models(server):
    """The README's example: the image pipeline, a decoupled stream and two accumulators."""
    http = httpclient.InferenceServerClient(server.http)
    image = httpclient.InferInput("IMAGE", [1, 4], "UINT8")
    image.set_data_from_numpy(np.array([[0, 255, 128, 64]], np.uint8))
    result = http.infer("image_pipeline", [image])
    assert result.as_numpy("CLASS_ID").tolist() == [[1]]
    assert result.as_numpy("MASK").tolist() == [[False, True, True, False]]
    client = grpcclient.InferenceServerClient(server.grpc)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        values = grpcclient.InferInput("IN", [3], "INT32")
        values.set_data_from_numpy(np.array([5, 6, 7], np.int32))
        client.async_stream_infer("repeat_decoupled", [values], enable_empty_final_response=True)
        got = []
        for _ in range(4):
            result, error = results.get(timeout=10)
            out = result.as_numpy("OUT")
            final = result.get_response().parameters["triton_final_response"].bool_param
            got.append((None if out is None else int(out[0]), final))
        assert got == [(5, False), (6, False), (7, False), (None, True)]
        for name, shape in (("accumulator", [1, 1]), ("accumulator_state", [1])):
            for step, value in enumerate([1, 2, 3]):
                x = grpcclient.InferInput("INPUT", shape, "INT32")
                x.set_data_from_numpy(np.full(shape, value, np.int32))
                client.async_stream_infer(name, [x], sequence_id=42, sequence_start=step == 0, sequence_end=step == 2)
                result, error = results.get(timeout=10)
                assert error is None and int(result.as_numpy("OUTPUT").reshape(-1)[0]) == [1, 3, 6][step], name
    finally:
        client.stop_stream()
