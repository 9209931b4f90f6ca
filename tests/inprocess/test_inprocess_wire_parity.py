"""An in-process error carries the text an HTTP client reads for the same request, and its class
names the kind behind the HTTP status (a real tritonlite server answers over HTTP beside it)."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from inprocess_models import build_repository
from serverutil import RunningServer

import tritonlite

# the HTTP status of each error class, as the HTTP frontend maps Triton's kinds
STATUS = {
    tritonlite.NotFoundError: 404,
    tritonlite.InvalidArgumentError: 400,
    tritonlite.UnavailableError: 503,
    tritonlite.InternalError: 500,
}

CASES = {
    "unknown model": ("no_such_model", "", {"INPUT0": np.ones(4, np.float32)}),
    "unknown version": ("add_sub", "3", {"INPUT0": np.ones(4, np.float32), "INPUT1": np.ones(4, np.float32)}),
    "missing input": ("add_sub", "", {"INPUT0": np.ones(4, np.float32)}),
    "wrong shape": ("add_sub", "", {"INPUT0": np.ones(4, np.float32), "INPUT1": np.ones(2, np.float32)}),
    "wrong datatype": ("add_sub", "", {"INPUT0": np.ones(4, np.float32), "INPUT1": np.ones(4, np.int32)}),
    "unexpected input": ("add_sub", "", {"INPUT0": np.ones(4, np.float32), "X": np.ones(4, np.float32)}),
    "model error": ("exec_fails", "", {"INPUT0": np.ones(4, np.float32)}),
}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return build_repository(tmp_path_factory.mktemp("inprocess_parity"))


@pytest.fixture(scope="module")
def http_server(repository):
    running = RunningServer([repository], "--allow-grpc=false", "--allow-metrics=false")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(repository):
    running = tritonlite.Server(model_repository=repository).start()
    yield running
    running.stop()


def http_answer(address: str, model: str, version: str, inputs: dict[str, np.ndarray]) -> tuple[int, str]:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    body = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": tritonlite.Tensor.from_dlpack(array).datatype,
                "data": array.tolist(),
            }
            for name, array in inputs.items()
        ]
    }
    answer = requests.post(f"http://{address}{path}", json=body, timeout=10)
    return answer.status_code, answer.json()["error"]


def in_process_error(server: tritonlite.Server, model: str, version: str, inputs: dict) -> tritonlite.TritonError:
    with pytest.raises(tritonlite.TritonError) as info:
        list(server.model(model, int(version) if version else -1).infer(inputs=inputs))
    return info.value


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_text_and_kind_match_http(case, server, http_server):
    model, version, inputs = CASES[case]
    status, text = http_answer(http_server.http, model, version, inputs)
    error = in_process_error(server, model, version, inputs)
    assert str(error) == text
    assert STATUS[type(error)] == status
