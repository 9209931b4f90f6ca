"""Small python-backend models for end-to-end tests: one input INPUT0 (``x``), outputs from one expression."""

from __future__ import annotations

from pathlib import Path

import pytest
from serverutil import RunningServer

TEMPLATE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse({tensors}))
        return out
"""


def serve_python_models(root: Path, models: dict[str, tuple[str, str]]) -> RunningServer:
    """Write each model (name: (config.pbtxt text, the expression of its output tensor list)) and serve them."""
    for name, (config, tensors) in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(config)
        (root / name / "1" / "model.py").write_text(TEMPLATE.format(tensors=tensors))
    return RunningServer([root])


def python_models_server(models: dict[str, tuple[str, str]]):
    """A module-scoped fixture: a server of these models (as ``serve_python_models``)."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        running = serve_python_models(tmp_path_factory.mktemp("python_models"), models)
        yield running
        running.stop()

    return server
