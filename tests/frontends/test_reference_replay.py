"""Replay the requests captured from real Triton 2.51 and compare the answers.

tests/reference_data/triton_2.51.json holds each request exactly as sent to the reference
server and what it answered (status, error text, body; gRPC code, details, response). The
same bytes go to tritonlite here, so the suite needs no NVIDIA binary.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest
import requests
from conftest import TEST_REPOSITORY
from serverutil import RunningServer

from tritonlite.protocol import grpc_service_pb2 as pb

REFERENCE = json.loads((Path(__file__).parents[1] / "reference_data" / "triton_2.51.json").read_text())
CAPTURE_PATH = REFERENCE["repository_abs_path_at_capture"]

# Where tritonlite answers differently on purpose (each with its reason).
DELIBERATE = {
    # tritonlite lists a model whose config.pbtxt fails to parse as UNAVAILABLE with the file,
    # line and column in the reason; Triton lists the bare name with no state.
    ("repository_index", "http"): "bad config is listed with state and reason",
    ("repository_index", "grpc"): "bad config is listed with state and reason",
    # tritonlite advertises only the extensions it implements.
    ("get_v2", "http"): "extensions list differs",
    ("server_metadata", "grpc"): "extensions list differs",
    # grpcio reports undecodable request bytes itself, before any handler runs
    ("garbage_request_bytes", "grpc"): "grpcio's own deserialization error",
    # tritonlite serves its status page at / (Triton answers 404 there).
    ("root_path", "http"): "the status page",
}

CASES = [c for c in REFERENCE["cases"] if (c["id"], c["protocol"]) not in DELIBERATE]


def _local(text: str) -> str:
    return text.replace(CAPTURE_PATH, str(TEST_REPOSITORY.resolve()))


@pytest.fixture(scope="module")
def reference_server():
    server = RunningServer([TEST_REPOSITORY], "--exit-on-error=false")
    yield server
    server.stop()


def _ids(case: dict) -> str:
    return f"{case['protocol']}-{case['id']}"


@pytest.mark.parametrize("case", [c for c in CASES if c["protocol"] == "http"], ids=_ids)
def test_http_answer_matches_triton(reference_server, case):
    req, expected = case["request"], case["answer"]
    response = requests.request(
        req["method"],
        f"http://{reference_server.http}{req['path']}",
        headers=req["headers"],
        data=base64.b64decode(req["body_b64"]),
        timeout=30,
    )
    assert response.status_code == expected["status"], response.text
    body, want_body = response.content, base64.b64decode(expected["body_b64"])
    want_header = expected["headers"].get("inference-header-content-length")
    header = response.headers.get("inference-header-content-length")
    assert (header is None) == (want_header is None)
    if header is not None:  # JSON header, then binary tensors that must match byte for byte
        assert json.loads(body[: int(header)]) == json.loads(want_body[: int(want_header)])
        assert body[int(header) :] == want_body[int(want_header) :]
    elif expected.get("json") is not None:
        assert response.json() == json.loads(_local(json.dumps(expected["json"])))
    else:
        assert body == want_body


@pytest.mark.parametrize("case", [c for c in CASES if c["protocol"] == "grpc"], ids=_ids)
def test_grpc_answer_matches_triton(reference_server, case):
    req, expected = case["request"], case["answer"]
    rpc = req["rpc"]
    method = getattr(pb, f"{rpc}Request", None) or pb.ModelInferRequest
    response_type = getattr(pb, f"{rpc}Response", None) or pb.ModelInferResponse
    with grpc.insecure_channel(reference_server.grpc) as channel:
        call = channel.unary_unary(
            f"/inference.GRPCInferenceService/{rpc}",
            request_serializer=lambda raw: raw,
            response_deserializer=response_type.FromString,
        )
        payload = base64.b64decode(req["request_b64"])
        method.FromString(payload)  # the captured request is a valid message
        try:
            response = call(payload, timeout=30)
            code, details = "OK", ""
        except grpc.RpcError as exc:
            response, code, details = None, exc.code().name, exc.details()
    assert (code, details) == (expected["code"], _local(expected["details"]))
    if code == "OK" and expected.get("response_b64") is not None:
        want = response_type.FromString(base64.b64decode(expected["response_b64"]))
        assert response == want
