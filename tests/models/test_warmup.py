"""Model warmup: the samples Triton builds, its error texts, and running them on a model.

Expected behaviour and texts were captured from Triton 2.51 with small repositories
(python backend, CPU instances).
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tritonlite.backends import InstanceSpec
from tritonlite.core.errors import ErrorKind, TritonError, internal
from tritonlite.core.types import InferResponse
from tritonlite.models.model import ModelVersion
from tritonlite.models.warmup import run_warmup, warmup_requests
from tritonlite.repository.config import complete_config, read_config, validate_config
from tritonlite.scheduling.base import TaskScheduler
from tritonlite.scheduling.direct import DirectScheduler
from tritonlite.scheduling.instance_runner import InstanceRunner

RECORDING_MODEL = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.instance = args["model_instance_name"]
        self.log = args["model_repository"] + "/calls.jsonl"

    def execute(self, requests):
        seen = []
        for r in requests:
            tensors = {}
            for t in r.inputs():
                a = t.as_numpy()
                values = [v.decode() if isinstance(v, bytes) else v for v in a.reshape(-1).tolist()]
                tensors[t.name()] = {"shape": list(a.shape), "dtype": str(a.dtype), "values": values}
            seen.append(tensors)
        with open(self.log, "a") as f:
            f.write(json.dumps({"instance": self.instance, "requests": seen}) + "\\n")
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.zeros([1, 1], np.float32))]) for _ in requests]
"""

RAISING_MODEL = """
class TritonPythonModel:
    def execute(self, requests):
        raise Exception("boom in execute")
"""


def write_model(root: Path, name: str, body: str, code: str = RECORDING_MODEL, files: dict | None = None) -> Path:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n' + body)
    (folder / "1" / "model.py").write_text(code)
    for file_name, content in (files or {}).items():
        (folder / "warmup").mkdir(exist_ok=True)
        (folder / "warmup" / file_name).write_bytes(content)
    return folder


def config_of(folder: Path):
    config = read_config(folder, False)
    complete_config(config, folder.name)
    validate_config(config, folder.name)
    return config


def length_prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def error_of(folder: Path) -> TritonError:
    with pytest.raises(TritonError) as info:
        warmup_requests(config_of(folder), folder)
    return info.value


BASIC = """
max_batch_size: 8
input [
  { name: "A" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "B" data_type: TYPE_INT32 dims: [ 2 ] },
  { name: "C" data_type: TYPE_STRING dims: [ 2 ] },
  { name: "D" data_type: TYPE_BOOL dims: [ 4 ] }
]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]
instance_group [{ kind: KIND_CPU count: 2 }]
model_warmup [
  { name: "s1" batch_size: 2 count: 3
    inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } }
    inputs { key: "B" value: { data_type: TYPE_INT32 dims: [ 2 ] random_data: true } }
    inputs { key: "C" value: { data_type: TYPE_STRING dims: [ 2 ] random_data: true } }
    inputs { key: "D" value: { data_type: TYPE_BOOL dims: [ 4 ] random_data: true } } },
  { name: "skipped: batch size 0"
    inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } } },
  { name: "s3" batch_size: 1
    inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 3 ] random_data: true } }
    inputs { key: "B" value: { data_type: TYPE_INT32 dims: [ 2 ] zero_data: true } }
    inputs { key: "C" value: { data_type: TYPE_STRING dims: [ 2 ] zero_data: true } }
    inputs { key: "D" value: { data_type: TYPE_BOOL dims: [ 4 ] zero_data: true } } }
]
"""


# --- building samples ------------------------------------------------------------------------------


def test_samples_follow_tritons_rules(tmp_path):
    folder = write_model(tmp_path, "basic", BASIC)
    samples = warmup_requests(config_of(folder), folder)
    assert [(s.name, s.count, len(s.requests)) for s in samples] == [("s1", 3, 2), ("s3", 1, 1)]
    first = samples[0].requests[0]
    tensors = {t.name: t for t in first.inputs}
    assert {name: t.shape for name, t in tensors.items()} == {"A": [1, 3], "B": [1, 2], "C": [1, 2], "D": [1, 4]}
    assert {name: t.datatype for name, t in tensors.items()} == {"A": "FP32", "B": "INT32", "C": "BYTES", "D": "BOOL"}
    assert tensors["A"].data.dtype == np.float32 and not tensors["A"].data.any()
    assert tensors["B"].data.dtype == np.int32 and tensors["B"].data.shape == (1, 2)
    assert tensors["C"].data.tolist() == [[b"", b""]]  # random STRING data is empty strings, as in Triton
    assert tensors["D"].data.dtype == np.bool_
    # the requests of one sample carry the same data
    assert [t.name for t in first.inputs] == ["A", "B", "C", "D"]  # in the config's order
    assert np.array_equal(samples[0].requests[1].inputs[1].data, tensors["B"].data)
    assert first.id == "" and first.outputs is None and first.model_name == "basic"


def test_non_batching_models_use_the_dims_alone(tmp_path):
    folder = write_model(
        tmp_path,
        "nobatch",
        'input [{ name: "A" data_type: TYPE_FP16 dims: [ 2, 3 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'model_warmup [{ name: "n" batch_size: 1 inputs { key: "A" value: { data_type: TYPE_FP16 dims: [ 2, 3 ] '
        "random_data: true } } }]\n",
    )
    (sample,) = warmup_requests(config_of(folder), folder)
    tensor = sample.requests[0].inputs[0]
    assert tensor.shape == [2, 3] and tensor.data.shape == (2, 3) and tensor.data.dtype == np.float16


def test_data_files_are_read_from_the_warmup_folder(tmp_path):
    values = np.array([1.5, 2.5, 3.5, 4.5, 9.0], np.float32)  # one value more than needed: cut
    folder = write_model(
        tmp_path,
        "files",
        'max_batch_size: 4\ninput [{ name: "A" data_type: TYPE_FP32 dims: [ 4 ] }, '
        '{ name: "S" data_type: TYPE_STRING dims: [ 2 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'model_warmup [{ name: "f" batch_size: 1 '
        'inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "a.bin" } } '
        'inputs { key: "S" value: { data_type: TYPE_STRING dims: [ 2 ] input_data_file: "s.bin" } } '
        'inputs { key: "EXTRA" value: { data_type: TYPE_INT32 dims: [ 1 ] zero_data: true } } }]\n',
        files={"a.bin": values.tobytes(), "s.bin": length_prefixed(b"hello", b"wo")},
    )
    (sample,) = warmup_requests(config_of(folder), folder)
    tensors = {t.name: t for t in sample.requests[0].inputs}
    assert tensors["A"].data.tolist() == [[1.5, 2.5, 3.5, 4.5]]
    assert tensors["S"].data.tolist() == [[b"hello", b"wo"]]
    # an input the model does not declare still reaches it (Triton's override input)
    assert tensors["EXTRA"].shape == [1, 1]


WARMUP_A = 'model_warmup [{{ name: "w" batch_size: 1 inputs {{ key: "A" value: {{ {value} }} }} }}]\n'
ONE_INPUT = (
    'max_batch_size: 4\ninput [{{ name: "A" data_type: {type} dims: [ {dims} ] }}]\n'
    'output [{{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }}]\n'
)


@pytest.mark.parametrize(
    ("config_type", "dims", "value", "files", "kind", "message"),
    [
        (
            "TYPE_FP32", "4", 'data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "short.bin"', {"short.bin": b"abcdef"},
            ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] warmup setting expects 16 bytes, but the data provided from short.binonly "
            "has 6 bytes",
        ),
        (
            "TYPE_FP32", "-1", "data_type: TYPE_FP32 dims: [ -1 ] zero_data: true", {}, ErrorKind.INVALID_ARG,
            "warmup setting expects all variable-size dimensions are specified for input 'A'",
        ),
        (
            "TYPE_FP32", "2", "data_type: TYPE_FP32 dims: [ 2 ]", {}, ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] warmup setting expects input 'A' to have input_data_type set",
        ),
        (
            "TYPE_FP32", "2", "data_type: TYPE_INT64 dims: [ 3 ] zero_data: true", {}, ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] inference input 'A' data-type is 'INT64', but model 'm' expects 'FP32'",
        ),
        (
            "TYPE_STRING", "3", 'data_type: TYPE_STRING dims: [ 3 ] input_data_file: "s.bin"',
            {"s.bin": length_prefixed(b"hello", b"wo")}, ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] expected 3 string elements for inference input 'A' for model 'm', got 2",
        ),
        (
            "TYPE_STRING", "2", 'data_type: TYPE_STRING dims: [ 2 ] input_data_file: "s.bin"',
            {"s.bin": length_prefixed(b"a", b"bb", b"ccc", b"d")}, ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] unexpected number of string elements 3 for inference input 'A' for model "
            "'m', expecting 2",
        ),
        (
            "TYPE_STRING", "2", 'data_type: TYPE_STRING dims: [ 2 ] input_data_file: "s.bin"',
            {"s.bin": length_prefixed(b"a") + b"\x05\x00"}, ErrorKind.INVALID_ARG,
            "[request id: <id_unknown>] incomplete string length indicator for inference input 'A' for model 'm', "
            "expecting 4 bytes but only 2 bytes available. Please make sure the string length indicator is in one "
            "buffer.",
        ),
    ],
)  # fmt: skip
def test_sample_errors_have_tritons_texts(tmp_path, config_type, dims, value, files, kind, message):
    folder = write_model(
        tmp_path, "m", ONE_INPUT.format(type=config_type, dims=dims) + WARMUP_A.format(value=value), files=files
    )
    error = error_of(folder)
    assert (error.kind, error.message) == (kind, message)


def test_a_missing_data_file(tmp_path):
    value = 'data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "nope.bin"'
    folder = write_model(tmp_path, "m", ONE_INPUT.format(type="TYPE_FP32", dims="4") + WARMUP_A.format(value=value))
    assert error_of(folder).status_text() == (
        f"Internal: failed to open text file for read {folder}/warmup/nope.bin: No such file or directory"
    )


def test_a_missing_input(tmp_path):
    folder = write_model(
        tmp_path,
        "m",
        'max_batch_size: 4\ninput [{ name: "A" data_type: TYPE_FP32 dims: [ 2 ] }, '
        '{ name: "B" data_type: TYPE_FP32 dims: [ 2 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        + WARMUP_A.format(value="data_type: TYPE_FP32 dims: [ 2 ] zero_data: true"),
    )
    assert error_of(folder).message == (
        "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'm'. Got input(s) ['A'], but "
        "missing required input(s) ['B']. Please provide all required input(s)."
    )


# --- running with fakes ---------------------------------------------------------------------------


class FakeScheduler(TaskScheduler):
    def __init__(self, results=None):
        self.calls = []
        self.results = results or {}

    async def stop(self) -> None:
        return None

    async def run(self, request):
        self.calls.append(request)
        number = len(self.calls)
        await asyncio.sleep(0)
        result = self.results.get(number)
        if isinstance(result, TritonError) and number % 2:
            raise result  # a scheduler may raise instead of returning the error
        return result or InferResponse(request.model_name, "1", "", [])


class FakeRunner:
    def __init__(self, name):
        self.name = name
        self.batches = []

    async def execute(self, requests):
        self.batches.append(requests)
        return [InferResponse(r.model_name, "1", "", []) for r in requests]


def fake_model(folder: Path, scheduler) -> ModelVersion:
    model = ModelVersion(folder.name, 1, config_of(folder), folder)
    model.scheduler = scheduler
    return model


def test_run_warmup_through_the_scheduler(tmp_path):
    model = fake_model(write_model(tmp_path, "basic", BASIC), FakeScheduler())
    asyncio.run(run_warmup(model))
    calls = model.scheduler.calls
    assert len(calls) == 2 * 3 + 1  # s1: 2 requests x 3 iterations, s3: 1
    assert all(call.model_version == "1" and call.arrival_ns for call in calls)
    assert len({id(call) for call in calls}) == len(calls)  # a fresh request object each time
    assert model.stats.success.count == 7


def test_run_warmup_per_instance_with_runners(tmp_path):
    model = fake_model(write_model(tmp_path, "basic", BASIC), FakeScheduler())
    runners = [FakeRunner("basic_0_0"), FakeRunner("basic_0_1")]
    asyncio.run(run_warmup(model, runners))
    for runner in runners:
        assert [len(batch) for batch in runner.batches] == [2, 2, 2, 1]  # each sample's requests in one execute
    assert model.scheduler.calls == []
    stats = model.stats.as_json("basic", "1")
    assert (stats["inference_count"], stats["execution_count"]) == (14, 8)  # Triton counts warmup executions
    assert [b["batch_size"] for b in stats["batch_stats"]] == [1, 2]


def test_a_failing_sample_reports_every_failed_request(tmp_path):
    errors = {1: internal("bad thing 0"), 2: internal("bad thing 1")}
    model = fake_model(write_model(tmp_path, "basic", BASIC), FakeScheduler(errors))
    with pytest.raises(TritonError) as info:
        asyncio.run(run_warmup(model))
    assert info.value.status_text() == "Invalid argument: failed to run warmup sample 's1': bad thing 0; bad thing 1; "
    assert len(model.scheduler.calls) == 2  # warmup stops at the first failing iteration


def test_no_warmup_config_runs_nothing(tmp_path):
    folder = write_model(
        tmp_path, "plain", ONE_INPUT.format(type="TYPE_FP32", dims="2") + 'model_warmup [{ name: "zero batch" }]\n'
    )
    model = fake_model(folder, FakeScheduler())
    asyncio.run(run_warmup(model))
    assert model.scheduler.calls == []


@pytest.mark.parametrize(("max_batch_size", "batch_size"), [(0, 2), (4, 5)])
def test_a_batch_larger_than_the_model_allows(tmp_path, max_batch_size, batch_size):
    folder = write_model(
        tmp_path,
        "m",
        f'max_batch_size: {max_batch_size}\ninput [{{ name: "A" data_type: TYPE_FP32 dims: [ 3 ] }}]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        f'model_warmup [{{ name: "big" batch_size: {batch_size} '
        'inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } } }]\n',
    )
    model = fake_model(folder, FakeScheduler())
    with pytest.raises(TritonError) as info:
        asyncio.run(run_warmup(model, [FakeRunner("m_0")]))
    one = f"batch size {batch_size} for 'm_0', max allowed is {max_batch_size}; "
    assert info.value.message == "failed to run warmup sample 'big': " + one * batch_size


def test_string_data_longer_than_the_file_fails_when_the_sample_runs(tmp_path):
    value = 'data_type: TYPE_STRING dims: [ 2 ] input_data_file: "s.bin"'
    folder = write_model(
        tmp_path,
        "m",
        ONE_INPUT.format(type="TYPE_STRING", dims="2") + WARMUP_A.format(value=value),
        files={"s.bin": length_prefixed(b"a") + struct.pack("<I", 10) + b"xy"},
    )
    model = fake_model(folder, FakeScheduler())
    with pytest.raises(TritonError) as info:
        asyncio.run(run_warmup(model))
    assert info.value.message == (
        "failed to run warmup sample 'w': incomplete string data for inference input 'A', expecting string of "
        "length 10 but only 2 bytes available; "
    )


# --- a real python model --------------------------------------------------------------------------


async def load_and_warm(folder: Path, per_instance: bool) -> ModelVersion:
    config = config_of(folder)
    model = ModelVersion(folder.name, 1, config, folder)
    runners = []
    for group in config.instance_group:
        for index in range(group.count):
            name = f"{group.name}_{index}"
            runner = InstanceRunner(name)
            spec = InstanceSpec(folder.name, 1, folder, config, model.config_json, name, "CPU", 0)
            await runner.start("python", spec)
            runners.append(runner)
    model.scheduler = DirectScheduler(runners, model.stats)
    try:
        await run_warmup(model, runners if per_instance else None)
    finally:
        await model.scheduler.stop()
    return model


def test_a_python_model_is_warmed_up_on_each_instance(tmp_path):
    folder = write_model(tmp_path, "basic", BASIC)
    asyncio.run(load_and_warm(folder, per_instance=True))
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    for instance in ("basic_0_0", "basic_0_1"):
        mine = [c["requests"] for c in calls if c["instance"] == instance]
        assert [len(requests) for requests in mine] == [2, 2, 2, 1]  # s1 three times (2 requests), then s3
        s1, s3 = mine[0][0], mine[3][0]
        assert {name: t["shape"] for name, t in s1.items()} == {"A": [1, 3], "B": [1, 2], "C": [1, 2], "D": [1, 4]}
        assert s1["A"] == {"shape": [1, 3], "dtype": "float32", "values": [0.0, 0.0, 0.0]}
        assert s1["B"]["dtype"] == "int32"
        assert s1["C"]["values"] == ["", ""] and s1["C"]["dtype"] == "object"
        assert s1["D"]["dtype"] == "bool"
        assert mine[1][0] == s1  # the same data every iteration
        assert s3["B"]["values"] == [0, 0] and s3["D"]["values"] == [False] * 4 and s3["C"]["values"] == ["", ""]


def test_a_python_model_through_its_scheduler(tmp_path):
    folder = write_model(tmp_path, "basic", BASIC)
    model = asyncio.run(load_and_warm(folder, per_instance=False))
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 7 and all(len(c["requests"]) == 1 for c in calls)
    assert model.stats.success.count == 7


def test_a_python_model_that_raises_during_warmup(tmp_path):
    body = (
        'max_batch_size: 4\ninput [{ name: "A" data_type: TYPE_FP32 dims: [ 2 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        "instance_group [{ kind: KIND_CPU count: 1 }]\n"
        'model_warmup [{ name: "boom sample" batch_size: 2 count: 2 '
        'inputs { key: "A" value: { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } } }]\n'
    )
    folder = write_model(tmp_path, "w_raises", body, code=RAISING_MODEL)
    with pytest.raises(TritonError) as info:
        asyncio.run(load_and_warm(folder, per_instance=True))
    one = (
        "Failed to process the request(s) for model 'w_raises_0_0', message: Exception: boom in execute\n\nAt:\n"
        f"  {folder}/1/model.py(4): execute\n; "
    )
    assert info.value.status_text() == "Invalid argument: failed to run warmup sample 'boom sample': " + one * 2
