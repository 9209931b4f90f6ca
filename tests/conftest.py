"""Shared fixtures: repositories and running servers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

from serverutil import RunningServer  # noqa: E402

ROOT = TESTS.parent
EXAMPLES = ROOT / "examples" / "model_repository"
TEST_REPOSITORY = TESTS / "data" / "repository"
REFERENCE_DIR = Path.home() / ".cache" / "tritonlite-reference"
PERF_ANALYZER = REFERENCE_DIR / "bin" / "perf_analyzer"

# every datatype with an identity model: (wire name, config name)
DATATYPES = [
    ("BOOL", "TYPE_BOOL"), ("UINT8", "TYPE_UINT8"), ("UINT16", "TYPE_UINT16"), ("UINT32", "TYPE_UINT32"),
    ("UINT64", "TYPE_UINT64"), ("INT8", "TYPE_INT8"), ("INT16", "TYPE_INT16"), ("INT32", "TYPE_INT32"),
    ("INT64", "TYPE_INT64"), ("FP16", "TYPE_FP16"), ("FP32", "TYPE_FP32"), ("FP64", "TYPE_FP64"),
    ("BF16", "TYPE_BF16"), ("BYTES", "TYPE_STRING"),
]  # fmt: skip

IDENTITY_MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
"""


def write_identity_model(root: Path, name: str, config_type: str, max_batch_size: int = 0) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        f'input [{{ name: "INPUT0" data_type: {config_type} dims: [ -1 ] }}]\n'
        f'output [{{ name: "OUTPUT0" data_type: {config_type} dims: [ -1 ] }}]\n'
    )
    (folder / "1" / "model.py").write_text(IDENTITY_MODEL)


@pytest.fixture(scope="session")
def dtype_repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dtype_repository")
    for wire, config_type in DATATYPES:
        write_identity_model(root, f"dtype_{wire.lower()}", config_type)
    return root


BLS_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            call = pb_utils.InferenceRequest(
                model_name="add_sub",
                requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", x), pb_utils.Tensor("INPUT1", x)],
            )
            answer = call.exec()
            if answer.has_error():
                responses.append(pb_utils.InferenceResponse(error=answer.error()))
                continue
            doubled = pb_utils.get_output_tensor_by_name(answer, "OUTPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", doubled)]))
        return responses
"""


def write_bls_model(root: Path) -> None:
    folder = root / "bls_double"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        'backend: "python"\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]\n'
    )
    (folder / "1" / "model.py").write_text(BLS_MODEL)


@pytest.fixture(scope="session")
def server(dtype_repository):
    """One server with the examples, the test repository (with broken models) and dtype models."""
    repo = dtype_repository.parent / "combined"
    if not repo.exists():
        shutil.copytree(TEST_REPOSITORY, repo)
        for model in EXAMPLES.iterdir():
            if not (repo / model.name).exists():
                shutil.copytree(model, repo / model.name)
        for model in dtype_repository.iterdir():
            shutil.copytree(model, repo / model.name)
        write_bls_model(repo)
    running = RunningServer([repo], "--exit-on-error=false")
    yield running
    running.stop()
