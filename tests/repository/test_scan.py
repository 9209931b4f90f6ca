"""Unit tests of tritonlite.repository.scan: model folders, version folders, version policies."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.scan import ModelSource, find_models, select_versions, version_folders


def make(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).mkdir(parents=True)


def policy(text: str) -> mc.ModelVersionPolicy:
    return text_format.Parse(text, mc.ModelVersionPolicy())


def test_find_models_in_one_repository(tmp_path):
    make(tmp_path, "b_model/1", "a_model/1")
    found, duplicates = find_models([tmp_path])
    assert duplicates == {}
    assert list(found) == ["a_model", "b_model"]
    assert found["a_model"] == ModelSource("a_model", tmp_path / "a_model", tmp_path)
    allowed, _ = find_models([tmp_path], allow_symlinks_outside=True)
    assert allowed["a_model"] == ModelSource("a_model", tmp_path / "a_model", None)


def test_find_models_accepts_string_paths(tmp_path):
    make(tmp_path, "m")
    found, _ = find_models([str(tmp_path)])
    assert found["m"].path == tmp_path / "m"


def test_hidden_folders_and_files_are_skipped(tmp_path):
    make(tmp_path, "visible", ".hidden", ".ipynb_checkpoints")
    (tmp_path / "README.md").write_text("not a model")
    (tmp_path / ".DS_Store").write_text("")
    found, duplicates = find_models([tmp_path])
    assert list(found) == ["visible"]
    assert duplicates == {}


def test_two_repositories_with_a_duplicate_name(tmp_path):
    first, second = tmp_path / "repo1", tmp_path / "repo2"
    make(first, "shared", "only_first")
    make(second, "shared", "only_second")
    found, duplicates = find_models([first, second])
    assert sorted(found) == ["only_first", "only_second"]
    assert found["only_first"].path == first / "only_first"
    assert found["only_second"].path == second / "only_second"
    assert duplicates == {"shared": f"model 'shared' appears in multiple repositories: {first} and {second}"}


def test_missing_repository_is_an_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(TritonError) as info:
        find_models([missing])
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == f"failed to stat file {missing}"


def test_repository_that_is_a_file_is_an_error(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(TritonError):
        find_models([file])


def test_empty_repository(tmp_path):
    assert find_models([tmp_path]) == ({}, {})


def test_version_folders_are_numeric_ascending(tmp_path):
    make(tmp_path, "10", "2", "1")
    assert version_folders(tmp_path) == [1, 2, 10]


def test_version_folders_ignore_non_numeric_zero_and_leading_zero(tmp_path):
    make(tmp_path, "1", "0", "01", "v2", "latest", "-3", "3a", ".4")
    (tmp_path / "5").write_text("a file, not a folder")
    assert version_folders(tmp_path) == [1]


def test_no_version_folders(tmp_path):
    (tmp_path / "config.pbtxt").write_text("")
    assert version_folders(tmp_path) == []


AVAILABLE = [1, 2, 3, 7]


def test_default_policy_is_latest_one():
    assert select_versions(AVAILABLE, mc.ModelVersionPolicy()) == [7]


@pytest.mark.parametrize(("count", "expected"), [(1, [7]), (2, [3, 7]), (4, [1, 2, 3, 7]), (10, [1, 2, 3, 7])])
def test_latest_n(count, expected):
    assert select_versions(AVAILABLE, policy(f"latest {{ num_versions: {count} }}")) == expected


def test_latest_zero_selects_nothing():
    assert select_versions(AVAILABLE, policy("latest { num_versions: 0 }")) == []


def test_all():
    assert select_versions(AVAILABLE, policy("all {}")) == AVAILABLE


def test_specific_versions_are_sorted():
    assert select_versions(AVAILABLE, policy("specific { versions: [ 7, 2 ] }")) == [2, 7]


def test_specific_missing_version_is_an_error():
    with pytest.raises(TritonError) as info:
        select_versions(AVAILABLE, policy("specific { versions: [ 2, 5 ] }"))
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == "version 5 is specified for model but the version directory is not present"


def test_no_available_versions():
    assert select_versions([], mc.ModelVersionPolicy()) == []
    assert select_versions([], policy("all {}")) == []


def test_version_folders_ignore_non_ascii_digits(tmp_path):
    # "²".isdigit() is true but int("²") fails; "١" is an Arabic-Indic one
    make(tmp_path, "2", "²", "١")
    assert version_folders(tmp_path) == [2]
