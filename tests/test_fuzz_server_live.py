"""A bounded live mutation run (scripts/fuzz_server.py, fixed seed): 300 mutated HTTP requests and gRPC
messages built from valid ones. Every refusal is Triton's (no unhandled exception, no request left
unanswered), the server still answers health, and its open files and threads do not grow."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_server.py"


@pytest.fixture(scope="module")
def fuzz_server():
    spec = importlib.util.spec_from_file_location("fuzz_server", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_server"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_mutated_requests_get_triton_answers(fuzz_server, tmp_path):
    log = tmp_path / "server.log"
    process, http, grpc_address = fuzz_server.start_server(log)
    try:
        summary = fuzz_server.fuzz(http, grpc_address, 300, seed=21, pid=process.pid)
    finally:
        process.terminate()
        process.wait(30)
    print(summary.text())
    assert summary.sent == 300
    assert summary.findings == []
    assert summary.resources_before != (0, 0)
    assert summary.statuses["http 200"] > 0 and summary.statuses["grpc INVALID_ARGUMENT"] > 0
    tracebacks = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
    assert [line for line in tracebacks if not any(known in line for known in fuzz_server.KNOWN)] == []
