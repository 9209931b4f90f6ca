"""A model folder or config.pbtxt that leads out of its repository is refused (unless the server allows
it), and no error quotes a config's text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from serverutil import RunningServer

from tritonlite.core.errors import TritonError
from tritonlite.repository.config import read_config
from tritonlite.repository.scan import find_models

SECRET = 'SECRET_TOKEN = "hunter2"\npassword: topsecret\n'

VALID = """
name: "outside"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
"""

MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0")
                .as_numpy())]) for r in requests]
"""


def _assert_no_secret(message: str) -> None:
    for word in ("SECRET_TOKEN", "hunter2", "password", "topsecret"):
        assert word not in message


def test_a_config_symlinked_out_of_the_repository_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text(SECRET)
    repo = tmp_path / "repo"
    (repo / "leaky" / "1").mkdir(parents=True)
    (repo / "leaky" / "config.pbtxt").symlink_to(outside)
    source = find_models([repo])[0]["leaky"]
    with pytest.raises(TritonError) as info:
        read_config(source.path, False, source.root)
    assert info.value.message == (
        f"failed to load model configuration: {repo / 'leaky' / 'config.pbtxt'} resolves outside the model "
        f"repository {repo} (--allow-symlinks-outside-repository allows it)"
    )
    # allowed: read, and its parse error still quotes none of it
    allowed = find_models([repo], allow_symlinks_outside=True)[0]["leaky"]
    with pytest.raises(TritonError) as info:
        read_config(allowed.path, False, allowed.root)
    assert re.search(r"config.pbtxt: line 1, column 1: ", info.value.message)
    _assert_no_secret(info.value.message)


def test_a_model_folder_symlinked_out_of_the_repository_is_refused(tmp_path):
    outside = tmp_path / "outside_model"
    outside.mkdir()
    (outside / "config.pbtxt").write_text(VALID)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "outside").symlink_to(outside, target_is_directory=True)
    source = find_models([repo])[0]["outside"]
    with pytest.raises(TritonError, match="resolves outside the model repository"):
        read_config(source.path, True, source.root)
    allowed = find_models([repo], allow_symlinks_outside=True)[0]["outside"]
    assert read_config(allowed.path, True, allowed.root).name == "outside"


def test_symlinks_inside_the_repository_are_fine(tmp_path):
    repo = tmp_path / "repo"
    (repo / "shared").mkdir(parents=True)
    (repo / "shared" / "config.pbtxt").write_text(VALID)
    (repo / "outside").mkdir()
    (repo / "outside" / "config.pbtxt").symlink_to(repo / "shared" / "config.pbtxt")
    source = find_models([repo])[0]["outside"]
    assert read_config(source.path, True, source.root).name == "outside"


@pytest.mark.parametrize(
    "text, position, reason",
    [
        ('SECRET_TOKEN = "hunter2"\n', "line 1, column 1",
         'Message type "inference.ModelConfig" has no field named "\u2026".'),
        ("max_batch_size: topsecret\n", "line 1, column 17", "Couldn't parse integer: \u2026"),
        ("name: password\n", "line 1, column 7", "Expected string but found: '\u2026'"),
        ("input [ { data_type: SECRET_TOKEN } ]\n", "line 1, column 22",
         'Enum type "inference.DataType" has no value named \u2026.'),
        ("\x00hunter2\xff", "line 1, column 1", "Expected identifier or number, got \u2026."),
    ],
)  # fmt: skip
def test_parse_errors_give_the_position_not_the_text(tmp_path, text, position, reason):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(text)
    with pytest.raises(TritonError) as info:
        read_config(tmp_path / "m", False)
    path = tmp_path / "m" / "config.pbtxt"
    assert info.value.message == f"failed to parse model configuration {path}: {position}: {reason}"
    _assert_no_secret(info.value.message)


def _index(server: RunningServer) -> dict[str, dict]:
    answer = requests.post(f"http://{server.http}/v2/repository/index", timeout=10)
    return {row["name"]: row for row in answer.json()}


def test_the_index_shows_no_outside_file(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "model").mkdir()
    (outside / "model" / "config.pbtxt").write_text(VALID)
    (outside / "model" / "1").mkdir()
    (outside / "model" / "1" / "model.py").write_text(MODEL)
    repo = tmp_path / "repo"
    (repo / "leaky" / "1").mkdir(parents=True)
    (repo / "leaky" / "config.pbtxt").symlink_to(outside / "secret.txt")
    (repo / "leaky" / "1" / "model.py").write_text(MODEL)
    (repo / "outside").symlink_to(outside / "model", target_is_directory=True)
    server = RunningServer([Path(repo)], "--exit-on-error=false")
    try:
        rows = _index(server)
        _assert_no_secret(str(rows))
        assert rows["leaky"]["state"] == rows["outside"]["state"] == "UNAVAILABLE"
        assert "resolves outside the model repository" in rows["leaky"]["reason"]
        assert "resolves outside the model repository" in rows["outside"]["reason"]
    finally:
        server.stop()
    server = RunningServer([Path(repo)], "--exit-on-error=false", "--allow-symlinks-outside-repository=true")
    try:
        rows = _index(server)
        assert rows["outside"]["state"] == "READY"
        assert rows["leaky"]["state"] == "UNAVAILABLE" and "line 1, column 1" in rows["leaky"]["reason"]
        _assert_no_secret(str(rows))
    finally:
        server.stop()
