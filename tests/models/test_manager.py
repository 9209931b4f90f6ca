"""The model manager: loading, version policies, auto-complete, lookup errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferTensor
from tritonlite.models.manager import ModelManager

VERSIONED_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.version = int(args["model_version"])

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("V", np.array([self.version], np.int32))])
                for _ in requests]
"""

AUTO_COMPLETE_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        config.set_max_batch_size(4)
        config.add_input({"name": "X", "data_type": "TYPE_INT64", "dims": [2]})
        config.add_output({"name": "Y", "data_type": "TYPE_INT64", "dims": [2]})
        return config

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2)]))
        return out
"""


def write_model(root: Path, name: str, config: str, code: str, versions=(1,)) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    for version in versions:
        (folder / str(version)).mkdir()
        (folder / str(version) / "model.py").write_text(code)


VERSIONED_CONFIG = (
    'backend: "python"\ninput [{ name: "IN" data_type: TYPE_FP32 dims: [1] }]\n'
    'output [{ name: "V" data_type: TYPE_INT32 dims: [1] }]\n'
)


def load(*roots: Path, strict: bool = False) -> ModelManager:
    manager = ModelManager(list(roots), strict_config=strict)
    asyncio.run(manager.load_all())
    return manager


def run(manager: ModelManager, name: str, version: str, inputs: list[InferTensor]):
    async def go():
        try:
            return await manager.get(name, version).infer(InferRequest(name, version, inputs=inputs))
        finally:
            await manager.shutdown()

    return asyncio.run(go())


def test_version_policies(tmp_path):
    write_model(tmp_path, "latest1", VERSIONED_CONFIG, VERSIONED_MODEL, versions=(1, 2, 3))
    write_model(
        tmp_path,
        "latest2",
        VERSIONED_CONFIG + "version_policy { latest { num_versions: 2 } }",
        VERSIONED_MODEL,
        versions=(1, 2, 3),
    )
    write_model(tmp_path, "every", VERSIONED_CONFIG + "version_policy { all { } }", VERSIONED_MODEL, versions=(1, 2))
    write_model(
        tmp_path,
        "pick",
        VERSIONED_CONFIG + "version_policy { specific { versions: [1, 3] } }",
        VERSIONED_MODEL,
        versions=(1, 2, 3),
    )
    manager = load(tmp_path)
    versions = {(row["name"], row["version"]) for row in manager.index()}
    assert versions == {
        ("latest1", "3"),
        ("latest2", "2"),
        ("latest2", "3"),
        ("every", "1"),
        ("every", "2"),
        ("pick", "1"),
        ("pick", "3"),
    }
    data = [InferTensor("IN", "FP32", [1], np.zeros(1, np.float32))]
    assert run(manager, "pick", "", data).outputs[0].data.tolist() == [3]  # latest ready version
    manager = load(tmp_path)
    assert run(manager, "pick", "1", data).outputs[0].data.tolist() == [1]


def test_lookup_errors_match_triton(tmp_path):
    write_model(tmp_path, "ok", VERSIONED_CONFIG, VERSIONED_MODEL)
    write_model(tmp_path, "broken", "backend: python\n", VERSIONED_MODEL)  # unquoted string: parse error
    manager = load(tmp_path)
    cases = [
        (("nope", ""), ErrorKind.NOT_FOUND, "Request for unknown model: 'nope' is not found"),
        (("broken", ""), ErrorKind.NOT_FOUND, "Request for unknown model: 'broken' is not found"),
        (("ok", "9"), ErrorKind.NOT_FOUND, "Request for unknown model: 'ok' version 9 is not found"),
        (("ok", "abc"), ErrorKind.INVALID_ARG,
         "failed to get model version from specified version string 'abc' (details: stol), "
         "version should be an integral value > 0"),
    ]  # fmt: skip
    for (name, version), kind, message in cases:
        with pytest.raises(TritonError) as info:
            manager.get(name, version)
        assert (info.value.kind, info.value.message) == (kind, message)
    broken = [row for row in manager.index() if row["name"] == "broken"][0]
    assert broken["state"] == "UNAVAILABLE" and "config.pbtxt" in broken["reason"] and "line 1" in broken["reason"]
    asyncio.run(manager.shutdown())


def test_python_auto_complete_config_fills_inputs_outputs(tmp_path):
    write_model(tmp_path, "auto", 'backend: "python"\n', AUTO_COMPLETE_MODEL)
    manager = load(tmp_path)
    model = manager.get("auto")
    assert model.max_batch_size == 4
    assert model.config_json["input"][0]["name"] == "X" and model.config_json["input"][0]["dims"] == [2]
    result = run(manager, "auto", "", [InferTensor("X", "INT64", [1, 2], np.array([[3, 4]], np.int64))])
    assert result.outputs[0].data.tolist() == [[6, 8]]


def test_strict_config_skips_auto_complete_and_requires_a_config(tmp_path):
    write_model(tmp_path, "auto", 'backend: "python"\n', AUTO_COMPLETE_MODEL)
    (tmp_path / "noconfig" / "1").mkdir(parents=True)
    manager = load(tmp_path, strict=True)
    assert manager.get("auto").inputs == {}
    row = [r for r in manager.index() if r["name"] == "noconfig"][0]
    assert row["state"] == "UNAVAILABLE" and "config.pbtxt" in row["reason"]
    asyncio.run(manager.shutdown())


def test_missing_model_file_and_duplicates_across_repositories(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write_model(first, "twice", VERSIONED_CONFIG, VERSIONED_MODEL)
    write_model(second, "twice", VERSIONED_CONFIG, VERSIONED_MODEL)
    write_model(first, "nofile", VERSIONED_CONFIG, VERSIONED_MODEL)
    (first / "nofile" / "1" / "model.py").unlink()
    manager = load(first, second)
    rows = {r["name"]: r for r in manager.index()}
    assert rows["twice"]["state"] == "UNAVAILABLE" and "multiple repositories" in rows["twice"]["reason"]
    assert rows["nofile"]["state"] == "UNAVAILABLE" and "model.py" in rows["nofile"]["reason"]
    assert not manager.all_ready()
    asyncio.run(manager.shutdown())


def test_instance_count_creates_that_many_instances(tmp_path):
    config = VERSIONED_CONFIG + "instance_group [{ count: 3 kind: KIND_CPU }, { count: 1 kind: KIND_CPU }]"
    write_model(tmp_path, "multi", config, VERSIONED_MODEL)
    manager = load(tmp_path)
    runners = manager.get("multi").scheduler.runners
    assert [r.name for r in runners] == ["multi_0_0", "multi_0_1", "multi_0_2", "multi_1_0"]
    asyncio.run(manager.shutdown())


def test_inline_execution_parameter_is_validated(tmp_path):
    bad = VERSIONED_CONFIG + 'parameters { key: "TRITONLITE_EXECUTE_INLINE" value: { string_value: "sometimes" } }'
    never = VERSIONED_CONFIG + 'parameters { key: "TRITONLITE_EXECUTE_INLINE" value: { string_value: "never" } }'
    write_model(tmp_path, "bad", bad, VERSIONED_MODEL)
    write_model(tmp_path, "never", never, VERSIONED_MODEL)
    manager = load(tmp_path)
    row = [r for r in manager.index() if r["name"] == "bad"][0]
    assert row["state"] == "UNAVAILABLE" and "TRITONLITE_EXECUTE_INLINE" in row["reason"]
    assert manager.get("never").scheduler.runners[0].mode == "never"
    asyncio.run(manager.shutdown())
