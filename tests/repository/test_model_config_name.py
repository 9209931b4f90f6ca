"""--model-config-name: a model's configs/<name>.pbtxt is read where it has one (Triton 2.51's behaviour)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from conftest import EXAMPLES
from serverutil import RunningServer

from tritonlite import cli
from tritonlite.models.check import check_repositories
from tritonlite.repository.config import config_path, read_config


@pytest.fixture
def repository(tmp_path) -> Path:
    """``m`` has configs/h100.pbtxt with three instances; ``n`` has only its config.pbtxt (one)."""
    original = (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
    for name in ("m", "n"):
        shutil.copytree(EXAMPLES / "add_sub" / "1", tmp_path / name / "1")
        (tmp_path / name / "config.pbtxt").write_text(original.replace("add_sub", name))
    (tmp_path / "m" / "configs").mkdir()
    (tmp_path / "m" / "configs" / "h100.pbtxt").write_text(
        original.replace("add_sub", "m").replace("KIND_CPU count: 1", "KIND_CPU count: 3")
    )
    return tmp_path


def test_the_named_config_is_read_where_it_exists(repository):
    assert config_path(repository / "m", "h100") == repository / "m" / "configs" / "h100.pbtxt"
    assert config_path(repository / "n", "h100") == repository / "n" / "config.pbtxt"
    assert config_path(repository / "m") == repository / "m" / "config.pbtxt"
    assert read_config(repository / "m", False, config_name="h100").instance_group[0].count == 3
    assert read_config(repository / "m", False).instance_group[0].count == 1


def test_the_checker_reads_the_named_config(repository):
    (repository / "m" / "configs" / "h100.pbtxt").write_text('name: "m"\nbackend: "python"\nmax_batch_size: -1\n')
    problems = check_repositories([repository], config_name="h100")
    assert [(p.model, p.path.name) for p in problems] == [("m", "h100.pbtxt")]
    assert check_repositories([repository]) == []


def test_a_name_with_a_space_is_refused(repository, capsys):
    assert cli.main([f"--model-repository={repository}", "--model-config-name=h 100", "--check"]) == 2
    assert "--model-config-name must not contain spaces" in capsys.readouterr().err


def test_a_server_loads_the_named_configs(repository):
    server = RunningServer([repository], "--model-config-name=h100")
    try:
        groups = {
            name: requests.get(f"http://{server.http}/v2/models/{name}/config", timeout=5).json()["instance_group"]
            for name in ("m", "n")
        }
        log = server.log()
    finally:
        server.stop()
    # Triton 2.51 on the same repository with --model-config-name=h100
    assert [(g["name"], g["count"]) for g in groups["m"]] == [("m_0", 3)]
    assert [(g["name"], g["count"]) for g in groups["n"]] == [("n_0", 1)]
    assert "| model_config_name        | h100" in log
