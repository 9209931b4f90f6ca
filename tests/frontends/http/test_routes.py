"""frontends.http.routes: health and readiness probes answer as Triton 2.51 does, byte for byte
(captured from the reference server on examples/model_repository)."""

from __future__ import annotations

import pytest
import requests
from conftest import EXAMPLES
from serverutil import RunningServer

# path -> (status, content-type, body), as Triton 2.51 answered
PROBES = {
    "/v2/health/live": (200, "text/plain", b""),
    "/v2/health/ready": (200, "text/plain", b""),
    "/v2/models/add_sub/ready": (200, "text/plain", b""),
    "/v2/models/nope/ready": (400, "text/plain", b'{"error":"Model version not ready"}'),
    "/v2/models/add_sub/versions/9/ready": (400, "text/plain", b'{"error":"Model version not ready"}'),
}


@pytest.fixture(scope="module")
def server():
    running = RunningServer([EXAMPLES])
    yield running
    running.stop()


@pytest.mark.parametrize("path", sorted(PROBES))
def test_probes_answer_as_triton(server, path):
    answer = requests.get(f"http://{server.http}{path}", timeout=10)
    assert (answer.status_code, answer.headers.get("content-type"), answer.content) == PROBES[path]
    assert answer.headers["content-length"] == str(len(PROBES[path][2]))
