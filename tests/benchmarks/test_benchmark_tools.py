"""The benchmarks outside this workspace: each says what it is missing and how to get it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import reference  # noqa: E402

# benchmark -> whether it also runs the real Triton
NEEDS = {
    "compare.py": True, "suite.py": True, "grpc_ceiling.py": True,
    "onnx_mlp.py": False, "onnx_threads.py": False, "onnx_floor.py": False, "onnx_cycle.py": False,
}  # fmt: skip


def without_tools(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITONLITE_PERF_ANALYZER", "TRITONLITE_TRITONSERVER")}
    env["TRITON_REFERENCE_DIR"] = str(tmp_path / "nothing-here")
    return env


@pytest.mark.parametrize("script", sorted(NEEDS))
def test_a_benchmark_names_what_is_missing(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script)], env=without_tools(tmp_path), capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"perf_analyzer not found at {tmp_path / 'nothing-here' / 'bin' / 'perf_analyzer'}" in done.stderr
    assert "python3 scripts/get_reference.py --perf-analyzer-only" in done.stderr
    assert ("Triton not found" in done.stderr) == NEEDS[script]


def test_tools_are_found_where_the_variables_point(tmp_path, monkeypatch):
    fake = tmp_path / "pa"
    fake.write_text("#!/bin/sh\n")
    server = tmp_path / "tritonserver"
    server.write_text("#!/bin/sh\n")
    monkeypatch.setenv("TRITONLITE_PERF_ANALYZER", str(fake))
    monkeypatch.setenv("TRITONLITE_TRITONSERVER", str(server))
    assert reference.missing() == []
    command = reference.triton_command()
    assert command is not None
    assert command.argv(Path("/models"), 1, 2, 3)[:5] == [
        str(server), "--model-repository=/models", "--http-port=1", "--grpc-port=2", "--metrics-port=3",
    ]  # fmt: skip


def test_the_installed_layout_is_run_with_its_backends(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITONLITE_TRITONSERVER", raising=False)
    monkeypatch.setenv("TRITON_REFERENCE_DIR", str(tmp_path))
    assert reference.triton_command() is None
    binary = tmp_path / "triton" / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    libs = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "nvidia" / "cuda_runtime" / "lib"
    libs.mkdir(parents=True)
    command = reference.triton_command()
    assert command.command == [
        str(binary), f"--backend-directory={tmp_path / 'triton' / 'backends'}",
        f"--cache-directory={tmp_path / 'triton' / 'caches'}",
    ]  # fmt: skip
    assert command.env["LD_LIBRARY_PATH"].split(":")[0] == str(libs)


def test_the_install_script_documents_itself():
    script = BENCHMARKS.parent / "scripts" / "get_reference.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--perf-analyzer-only" in done.stdout and "TRITON_REFERENCE_DIR" in done.stdout
