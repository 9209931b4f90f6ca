"""``tritonlite-server --check``: every mistake of a repository reported at once, with file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES

from tritonlite.models.check import check_repositories

MODEL_PY = "import triton_python_backend_utils as pb_utils\n\n\nclass TritonPythonModel:\n    pass\n"

IDENTITY = """name: "{name}"
backend: "python"
input [{{ name: "IN" data_type: {type} dims: [ 4 ] }}]
output [{{ name: "OUT" data_type: {type} dims: [ 4 ] }}]
"""

ENSEMBLE = """name: "{name}"
platform: "ensemble"
input [{{ name: "X" data_type: TYPE_FP32 dims: [ 4 ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }}]
ensemble_scheduling {{ step [
  {{ model_name: "{first}" input_map {{ key: "IN" value: "X" }} output_map {{ key: "OUT" value: "mid" }} }},
  {{ model_name: "{second}" input_map {{ key: "IN" value: "mid" }} output_map {{ key: "OUT" value: "Y" }} }}
] }}
"""


def write(root: Path, name: str, config: str, files: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    for relative, text in (files if files is not None else {"1/model.py": MODEL_PY}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


@pytest.fixture
def broken(tmp_path) -> tuple[Path, Path]:
    """A repository with one mistake of each kind (and good models), and a second repository."""
    root, other = tmp_path / "models", tmp_path / "more"
    write(root, "fp32", IDENTITY.format(name="fp32", type="TYPE_FP32"))
    write(root, "int32", IDENTITY.format(name="int32", type="TYPE_INT32"))
    write(root, "syntax", 'name: "syntax"\nbackend: "python"\nmax_batch_size: 0\ninput [ { name: "IN" }\n')
    write(root, "wrong_name", IDENTITY.format(name="other", type="TYPE_FP32"))
    write(root, "no_version", IDENTITY.format(name="no_version", type="TYPE_FP32"), files={})
    write(root, "no_file", 'name: "no_file"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n', {"1/readme.txt": ""})
    write(root, "bad_python", IDENTITY.format(name="bad_python", type="TYPE_FP32"), {"1/model.py": "def f(:\n"})
    write(root, "no_class", IDENTITY.format(name="no_class", type="TYPE_FP32"), {"1/model.py": "x = 1\n"})
    write(root, "unknown_backend", 'name: "unknown_backend"\nbackend: "tensorflowish"\n')
    write(root, "batching", 'name: "batching"\nbackend: "python"\nmax_batch_size: 0\ndynamic_batching { }\n')
    write(
        root,
        "sequence",
        'name: "sequence"\nbackend: "python"\nmax_batch_size: 2\nsequence_batching {\n  control_input [\n'
        '    { name: "S1" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },\n'
        '    { name: "S2" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] }\n  ]\n}\n',
    )
    for name, second in (("ens_missing", "absent"), ("ens_types", "int32"), ("ens_good", "fp32")):
        write(root, name, ENSEMBLE.format(name=name, first="fp32", second=second), files={"1/.keep": ""})
    write(other, "fp32", IDENTITY.format(name="fp32", type="TYPE_FP32"))
    write(other, "only_here", IDENTITY.format(name="only_here", type="TYPE_FP32"))
    return root, other


def test_a_clean_repository_has_no_problems():
    assert check_repositories([EXAMPLES]) == []


def test_every_mistake_is_reported_with_its_place(broken):
    root, _ = broken
    problems = {problem.model: problem for problem in check_repositories([root])}
    assert set(problems) == {
        "syntax", "wrong_name", "no_version", "no_file", "bad_python", "no_class", "unknown_backend", "batching",
        "sequence", "ens_missing", "ens_types",
    }  # fmt: skip
    syntax = problems["syntax"]
    assert (syntax.path, syntax.line) == (root / "syntax" / "config.pbtxt", 5)
    assert "Expected" in syntax.message or "expected" in syntax.message
    assert "unexpected 'name' value 'other'" in problems["wrong_name"].message
    assert problems["wrong_name"].line == 1
    assert "at least one version" in problems["no_version"].message
    assert problems["no_file"].path == root / "no_file" / "1" / "model.onnx"
    assert (problems["bad_python"].path.name, problems["bad_python"].line) == ("model.py", 1)
    assert "TritonPythonModel" in problems["no_class"].message
    assert "backend 'tensorflowish'" in problems["unknown_backend"].message
    assert problems["unknown_backend"].line == 2
    assert "max_batch_size is 0" in problems["batching"].message
    assert "multiple CONTROL_SEQUENCE_START tensors" in problems["sequence"].message
    assert "absent" in problems["ens_missing"].message
    assert "TYPE_INT32" in problems["ens_types"].message and "TYPE_FP32" in problems["ens_types"].message
    assert str(syntax).startswith(f"{root / 'syntax' / 'config.pbtxt'}:5:")


def test_a_model_in_two_repositories_is_reported(broken):
    root, other = broken
    problems = [p for p in check_repositories([root, other]) if p.model == "fp32"]
    assert len(problems) == 1 and "appears in multiple repositories" in problems[0].message


def test_the_command_prints_all_problems_and_exits_1(broken, tmp_path):
    root, other = broken
    command = [sys.executable, "-m", "tritonlite", f"--model-repository={root}", "--check", "--http-port=1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 11 and all(line.startswith(str(root)) for line in lines)
    assert "11 problems found" in done.stderr
    clean = tmp_path / "clean"
    shutil.copytree(EXAMPLES / "add_sub", clean / "add_sub")
    done = subprocess.run([*command[:3], f"--model-repository={clean}", "--check"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "")
