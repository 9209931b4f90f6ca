#!/usr/bin/env python3
"""Capture what the real NVIDIA Triton server answers, as replayable JSON facts.

Run manually against the reference server (NOT part of the test suite):

    /work/main/.venv/bin/python tests/reference_data/capture.py

By default this script starts the reference Triton itself (through
/work/shared/reference/run-triton.sh) on tests/data/repository with ports
28000/28001/28002 and ``--exit-on-error=false`` (without that flag Triton exits
because bad_config/init_fails fail to load), runs every case, greps the server
log, runs perf_analyzer, stops the server and writes
tests/reference_data/triton_2.51.json.

A second, short phase starts Triton on a copy of the repository that holds only
the models that load, to record the "everything ready" answers of
/v2/health/ready and ServerReady (with bad models present Triton's strict
readiness makes the server not ready).

Every case records the exact request (HTTP: method, path, headers, body;
gRPC: rpc name and the serialized request protobuf) and the exact answer.
Nothing is normalized.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REPO = ROOT / "tests" / "data" / "repository"
RUN_TRITON = Path("/work/shared/reference/run-triton.sh")
PERF_ANALYZER = Path.home() / ".cache" / "tritonlite-reference" / "bin" / "perf_analyzer"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 28000, 28001, 28002
SERVER_FLAGS = ["--exit-on-error=false"]
GOOD_MODELS = [
    "add_sub",
    "identity",
    "identity_batched",
    "identity_fp16",
    "string_upper",
    "labels",
    "exec_fails",
    "exec_raises",
]
GRPC_SERVICE = "/inference.GRPCInferenceService/"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- HTTP helpers


def jbody(obj) -> bytes:
    """JSON body exactly as sent (compact, deterministic)."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, dict]:
    """Binary-tensor body: JSON header followed by raw tensor bytes."""
    head = jbody(header)
    return head + b"".join(chunks), {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }


def fp32(*values) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def bytes_tensor(*strings: bytes) -> bytes:
    """Triton BYTES serialization: 4-byte little-endian length prefix per element."""
    return b"".join(struct.pack("<I", len(s)) + s for s in strings)


def http_case(cid, method, path, body: bytes = b"", headers: dict | None = None, note=None):
    headers = dict(headers or {})
    if body and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    if headers.get("Content-Type", "") is None:  # explicitly: send no Content-Type
        del headers["Content-Type"]
    c = {
        "id": cid,
        "protocol": "http",
        "request": {"method": method, "path": path, "headers": headers, "body_b64": b64(body)},
    }
    if note:
        c["note"] = note
    return c


def do_http(case):
    req = case["request"]
    body = base64.b64decode(req["body_b64"])
    conn = http.client.HTTPConnection("localhost", HTTP_PORT, timeout=60)
    try:
        conn.request(
            req["method"], req["path"], body=body if (body or req["method"] != "GET") else None, headers=req["headers"]
        )
        resp = conn.getresponse()
        data = resp.read()
        all_headers = {k.lower(): v for k, v in resp.getheaders()}
    except (http.client.HTTPException, OSError) as e:
        return {"status": None, "connection_error": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()
    headers = {k: all_headers[k] for k in ("content-type", "inference-header-content-length") if k in all_headers}
    answer = {
        "status": resp.status,
        "reason": resp.reason,
        "headers": headers,
        "all_headers": all_headers,
        "body_b64": b64(data),
    }
    # JSON part: whole body, or the JSON header of a binary response.
    hlen = all_headers.get("inference-header-content-length")
    text = data[: int(hlen)] if hlen is not None else data
    try:
        answer["json"] = json.loads(text.decode("utf-8")) if text else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        answer["text"] = data.decode("utf-8", "replace")
    if hlen is not None:
        answer["binary_b64"] = b64(data[int(hlen) :])
    return answer


# --------------------------------------------------------------------------- gRPC helpers

REQUEST_TYPES = {
    "ServerLive": pb.ServerLiveRequest,
    "ServerReady": pb.ServerReadyRequest,
    "ModelReady": pb.ModelReadyRequest,
    "ServerMetadata": pb.ServerMetadataRequest,
    "ModelMetadata": pb.ModelMetadataRequest,
    "ModelInfer": pb.ModelInferRequest,
    "ModelConfig": pb.ModelConfigRequest,
    "ModelStatistics": pb.ModelStatisticsRequest,
    "RepositoryIndex": pb.RepositoryIndexRequest,
    "RepositoryModelLoad": pb.RepositoryModelLoadRequest,
    "RepositoryModelUnload": pb.RepositoryModelUnloadRequest,
}
RESPONSE_TYPES = {
    "ServerLive": pb.ServerLiveResponse,
    "ServerReady": pb.ServerReadyResponse,
    "ModelReady": pb.ModelReadyResponse,
    "ServerMetadata": pb.ServerMetadataResponse,
    "ModelMetadata": pb.ModelMetadataResponse,
    "ModelInfer": pb.ModelInferResponse,
    "ModelConfig": pb.ModelConfigResponse,
    "ModelStatistics": pb.ModelStatisticsResponse,
    "RepositoryIndex": pb.RepositoryIndexResponse,
    "RepositoryModelLoad": pb.RepositoryModelLoadResponse,
    "RepositoryModelUnload": pb.RepositoryModelUnloadResponse,
}


def infer_req(model, inputs, version="", outputs=(), raw=None, rid="", parameters=None):
    """inputs: list of (name, datatype, shape, typed_field or None, values or None)."""
    r = pb.ModelInferRequest(model_name=model, model_version=version, id=rid)
    for name, dt, shape, field, values in inputs:
        t = r.inputs.add(name=name, datatype=dt, shape=shape)
        if field is not None:
            getattr(t.contents, field).extend(values)
    for o in outputs:
        if isinstance(o, str):
            r.outputs.add(name=o)
        else:
            out = r.outputs.add(name=o[0])
            for k, v in o[1].items():
                set_param(out.parameters[k], v)
    for chunk in raw or ():
        r.raw_input_contents.append(chunk)
    for k, v in (parameters or {}).items():
        set_param(r.parameters[k], v)
    return r


def set_param(p, v):
    if isinstance(v, bool):
        p.bool_param = v
    elif isinstance(v, int):
        p.int64_param = v
    elif isinstance(v, float):
        p.double_param = v
    else:
        p.string_param = v


def grpc_case(cid, rpc, msg, note=None):
    c = {
        "id": cid,
        "protocol": "grpc",
        "request": {
            "rpc": rpc,
            "request_b64": b64(msg.SerializeToString(deterministic=True)),
            "request_json": json_format.MessageToDict(msg, preserving_proto_field_name=True),
        },
    }
    if note:
        c["note"] = note
    return c


def grpc_raw_case(cid, rpc, data: bytes, note=None):
    c = {"id": cid, "protocol": "grpc", "request": {"rpc": rpc, "request_b64": b64(data)}}
    if note:
        c["note"] = note
    return c


def do_grpc(channel, case):
    rpc = case["request"]["rpc"]
    call = channel.unary_unary(GRPC_SERVICE + rpc)  # no (de)serializers: raw bytes both ways
    try:
        data = call(base64.b64decode(case["request"]["request_b64"]), timeout=60)
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}
    ans = {"code": "OK", "details": "", "response_b64": b64(data)}
    if rpc in RESPONSE_TYPES:
        msg = RESPONSE_TYPES[rpc].FromString(data)
        ans["response_json"] = json_format.MessageToDict(
            msg,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=rpc in ("ServerLive", "ServerReady", "ModelReady"),
        )
    return ans


# --------------------------------------------------------------------------- the cases


def add_sub_json(**over):
    body = {
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1.0, 2.0, 3.0, 4.0]},
            {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [0.5, 0.5, 0.5, 0.5]},
        ]
    }
    body.update(over)
    return body


def in0(**over):
    d = {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1.0, 2.0, 3.0, 4.0]}
    d.update(over)
    return d


IN1 = {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [0.5, 0.5, 0.5, 0.5]}
A = [1.0, 2.0, 3.0, 4.0]
B = [0.5, 0.5, 0.5, 0.5]
G_IN0 = ("INPUT0", "FP32", [4], "fp32_contents", A)
G_IN1 = ("INPUT1", "FP32", [4], "fp32_contents", B)
G_RAW0 = ("INPUT0", "FP32", [4], None, None)
G_RAW1 = ("INPUT1", "FP32", [4], None, None)
INFER = "/v2/models/add_sub/infer"


def error_cases():
    c = []
    # unknown model / version
    c.append(http_case("unknown_model_infer", "POST", "/v2/models/unknown/infer", jbody(add_sub_json())))
    c.append(grpc_case("unknown_model_infer", "ModelInfer", infer_req("unknown", [G_IN0, G_IN1])))
    c.append(http_case("unknown_version_infer", "POST", "/v2/models/add_sub/versions/7/infer", jbody(add_sub_json())))
    c.append(grpc_case("unknown_version_infer", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1], version="7")))
    c.append(http_case("unknown_version_metadata", "GET", "/v2/models/add_sub/versions/7"))
    c.append(
        grpc_case("unknown_version_metadata", "ModelMetadata", pb.ModelMetadataRequest(name="add_sub", version="7"))
    )
    c.append(http_case("unknown_version_ready", "GET", "/v2/models/add_sub/versions/7/ready"))
    c.append(grpc_case("unknown_version_ready", "ModelReady", pb.ModelReadyRequest(name="add_sub", version="7")))
    c.append(http_case("unknown_version_config", "GET", "/v2/models/add_sub/versions/7/config"))
    c.append(grpc_case("unknown_version_config", "ModelConfig", pb.ModelConfigRequest(name="add_sub", version="7")))
    c.append(
        http_case("non_numeric_version_infer", "POST", "/v2/models/add_sub/versions/abc/infer", jbody(add_sub_json()))
    )
    c.append(grpc_case("non_numeric_version_infer", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1], version="abc")))
    # inputs
    c.append(http_case("missing_input", "POST", INFER, jbody({"inputs": [in0()]})))
    c.append(grpc_case("missing_input", "ModelInfer", infer_req("add_sub", [G_IN0])))
    c.append(http_case("missing_input_with_id", "POST", INFER, jbody({"id": "req-7", "inputs": [in0()]})))
    c.append(grpc_case("missing_input_with_id", "ModelInfer", infer_req("add_sub", [G_IN0], rid="req-7")))
    c.append(
        http_case(
            "extra_unknown_input",
            "POST",
            INFER,
            jbody({"inputs": [in0(), IN1, {"name": "INPUT2", "datatype": "FP32", "shape": [4], "data": A}]}),
        )
    )
    c.append(
        grpc_case(
            "extra_unknown_input",
            "ModelInfer",
            infer_req("add_sub", [G_IN0, G_IN1, ("INPUT2", "FP32", [4], "fp32_contents", A)]),
        )
    )
    c.append(
        http_case("wrong_datatype", "POST", INFER, jbody({"inputs": [in0(datatype="INT32", data=[1, 2, 3, 4]), IN1]}))
    )
    c.append(
        grpc_case(
            "wrong_datatype",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "INT32", [4], "int_contents", [1, 2, 3, 4]), G_IN1]),
        )
    )
    c.append(http_case("wrong_shape", "POST", INFER, jbody({"inputs": [in0(shape=[3], data=[1.0, 2.0, 3.0]), IN1]})))
    c.append(
        grpc_case(
            "wrong_shape",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "FP32", [3], "fp32_contents", [1.0, 2.0, 3.0]), G_IN1]),
        )
    )
    c.append(
        http_case(
            "wrong_rank",
            "POST",
            INFER,
            jbody({"inputs": [in0(shape=[1, 4]), IN1]}),
            note="shape [1,4] for dims [4] on a max_batch_size 0 model",
        )
    )
    c.append(
        grpc_case(
            "wrong_rank", "ModelInfer", infer_req("add_sub", [("INPUT0", "FP32", [1, 4], "fp32_contents", A), G_IN1])
        )
    )
    # batching
    five = [float(i) for i in range(20)]
    c.append(
        http_case(
            "batch_too_large",
            "POST",
            "/v2/models/identity_batched/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [5, 4], "data": five}]}),
        )
    )
    c.append(
        grpc_case(
            "batch_too_large",
            "ModelInfer",
            infer_req("identity_batched", [("INPUT0", "FP32", [5, 4], "fp32_contents", five)]),
        )
    )
    c.append(
        http_case(
            "batch_dim_missing",
            "POST",
            "/v2/models/identity_batched/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": A}]}),
        )
    )
    c.append(
        grpc_case(
            "batch_dim_missing",
            "ModelInfer",
            infer_req("identity_batched", [("INPUT0", "FP32", [4], "fp32_contents", A)]),
        )
    )
    # malformed bodies (HTTP only)
    c.append(http_case("malformed_json", "POST", INFER, b'{"inputs": [', {"Content-Type": "application/json"}))
    c.append(http_case("json_not_object", "POST", INFER, b"[1, 2, 3]"))
    c.append(http_case("json_missing_inputs", "POST", INFER, b"{}"))
    c.append(http_case("empty_body", "POST", INFER, b"", {"Content-Type": "application/json"}))
    c.append(
        http_case(
            "input_missing_shape",
            "POST",
            INFER,
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "data": A}, IN1]}),
        )
    )
    c.append(
        http_case(
            "input_missing_datatype",
            "POST",
            INFER,
            jbody({"inputs": [{"name": "INPUT0", "shape": [4], "data": A}, IN1]}),
        )
    )
    c.append(
        http_case(
            "input_missing_data",
            "POST",
            INFER,
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4]}, IN1]}),
        )
    )
    c.append(http_case("unknown_datatype", "POST", INFER, jbody({"inputs": [in0(datatype="FLOAT"), IN1]})))
    c.append(
        grpc_case(
            "unknown_datatype",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "FLOAT", [4], "fp32_contents", A), G_IN1]),
        )
    )
    hdr = jbody(add_sub_json())
    c.append(
        http_case(
            "header_length_larger_than_body",
            "POST",
            INFER,
            hdr,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(hdr) + 100)},
        )
    )
    c.append(
        http_case(
            "header_length_not_a_number",
            "POST",
            INFER,
            hdr,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "abc"},
        )
    )
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 12}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ]
        },
        fp32(1, 2, 3),
        fp32(*B),
    )
    c.append(
        http_case(
            "binary_wrong_byte_size",
            "POST",
            INFER,
            body,
            h,
            note="binary_data_size 12 for FP32[4], total binary part consistent (28 bytes)",
        )
    )
    c.append(
        grpc_case(
            "binary_wrong_byte_size",
            "ModelInfer",
            infer_req("add_sub", [G_RAW0, G_RAW1], raw=[fp32(1, 2, 3), fp32(*B)]),
            note="raw_input_contents[0] is 12 bytes for FP32[4]",
        )
    )
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ]
        },
        fp32(*A),
        fp32(1, 2, 3),
    )
    c.append(
        http_case(
            "binary_body_shorter_than_sizes", "POST", INFER, body, h, note="sizes say 32 bytes, binary part has 28"
        )
    )
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ]
        },
        fp32(*A),
        fp32(*B),
        b"\0" * 8,
    )
    c.append(
        http_case(
            "binary_body_longer_than_sizes", "POST", INFER, body, h, note="8 extra trailing bytes after the tensors"
        )
    )
    c.append(
        grpc_case(
            "raw_and_typed_contents",
            "ModelInfer",
            infer_req("add_sub", [G_IN0, G_RAW1], raw=[fp32(*A), fp32(*B)]),
            note="typed contents on INPUT0 and raw_input_contents at the same time",
        )
    )
    c.append(
        grpc_case(
            "raw_contents_count_mismatch",
            "ModelInfer",
            infer_req("add_sub", [G_RAW0, G_RAW1], raw=[fp32(*A)]),
            note="two inputs, one raw_input_contents",
        )
    )
    c.append(
        http_case(
            "raw_binary_request_header_zero",
            "POST",
            "/v2/models/labels/infer",
            fp32(2.0),
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "0"},
            note="Triton 'raw binary request': header length 0, whole body is the single input",
        )
    )
    c.append(
        http_case(
            "raw_binary_request_no_header",
            "POST",
            "/v2/models/labels/infer",
            fp32(2.0),
            {"Content-Type": "application/octet-stream"},
        )
    )
    c.append(
        http_case(
            "raw_binary_request_wrong_size",
            "POST",
            "/v2/models/labels/infer",
            fp32(2.0, 3.0),
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "0"},
        )
    )
    c.append(
        http_case(
            "json_without_content_type",
            "POST",
            "/v2/models/labels/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [2.0]}]}),
            {"Content-Type": None},
            note="no Content-Type header at all",
        )
    )
    c.append(
        http_case("json_non_numeric_value", "POST", INFER, jbody({"inputs": [in0(data=[1.0, "abc", 3.0, 4.0]), IN1]}))
    )
    c.append(
        http_case(
            "json_data_count_mismatch",
            "POST",
            INFER,
            jbody({"inputs": [in0(data=[1.0, 2.0, 3.0]), IN1]}),
            note="shape [4] with 3 values",
        )
    )
    c.append(
        grpc_case(
            "data_count_mismatch",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "FP32", [4], "fp32_contents", [1.0, 2.0, 3.0]), G_IN1]),
            note="shape [4] with 3 fp32_contents",
        )
    )
    c.append(
        http_case(
            "json_data_too_many",
            "POST",
            INFER,
            jbody({"inputs": [in0(data=[1.0, 2.0, 3.0, 4.0, 5.0]), IN1]}),
            note="shape [4] with 5 values",
        )
    )
    c.append(
        http_case(
            "json_nested_data",
            "POST",
            INFER,
            jbody({"inputs": [in0(data=[[1.0, 2.0], [3.0, 4.0]]), IN1]}),
            note="nested data lists (allowed by the KServe spec)",
        )
    )
    c.append(
        http_case(
            "bytes_for_fp32_input",
            "POST",
            INFER,
            jbody({"inputs": [in0(datatype="BYTES", data=["a", "b", "c", "d"]), IN1]}),
        )
    )
    c.append(
        grpc_case(
            "bytes_for_fp32_input",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "BYTES", [4], "bytes_contents", [b"a", b"b", b"c", b"d"]), G_IN1]),
        )
    )
    c.append(
        http_case(
            "strings_in_fp32_data",
            "POST",
            INFER,
            jbody({"inputs": [in0(data=["1", "2", "3", "4"]), IN1]}),
            note="datatype FP32, data given as JSON strings",
        )
    )
    c.append(
        grpc_case(
            "wrong_contents_field",
            "ModelInfer",
            infer_req("add_sub", [("INPUT0", "FP32", [4], "int_contents", [1, 2, 3, 4]), G_IN1]),
            note="datatype FP32 but values in int_contents",
        )
    )
    c.append(http_case("unknown_output", "POST", INFER, jbody(add_sub_json(outputs=[{"name": "OUTPUT9"}]))))
    c.append(grpc_case("unknown_output", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1], outputs=["OUTPUT9"])))
    # models that are not ready / failed
    for m in ("init_fails", "bad_config"):
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": A}]}
        c.append(http_case(f"{m}_infer", "POST", f"/v2/models/{m}/infer", jbody(body)))
        c.append(grpc_case(f"{m}_infer", "ModelInfer", infer_req(m, [G_IN0])))
        c.append(http_case(f"{m}_ready", "GET", f"/v2/models/{m}/ready"))
        c.append(grpc_case(f"{m}_ready", "ModelReady", pb.ModelReadyRequest(name=m)))
        c.append(http_case(f"{m}_metadata", "GET", f"/v2/models/{m}"))
        c.append(grpc_case(f"{m}_metadata", "ModelMetadata", pb.ModelMetadataRequest(name=m)))
        c.append(http_case(f"{m}_config", "GET", f"/v2/models/{m}/config"))
        c.append(grpc_case(f"{m}_config", "ModelConfig", pb.ModelConfigRequest(name=m)))
    for m in ("exec_fails", "exec_raises"):
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": A}]}
        c.append(http_case(f"{m}_infer", "POST", f"/v2/models/{m}/infer", jbody(body)))
        c.append(grpc_case(f"{m}_infer", "ModelInfer", infer_req(m, [G_IN0])))
    # unknown model endpoints
    c.append(http_case("unknown_model_metadata", "GET", "/v2/models/unknown"))
    c.append(grpc_case("unknown_model_metadata", "ModelMetadata", pb.ModelMetadataRequest(name="unknown")))
    c.append(http_case("unknown_model_ready", "GET", "/v2/models/unknown/ready"))
    c.append(grpc_case("unknown_model_ready", "ModelReady", pb.ModelReadyRequest(name="unknown")))
    c.append(http_case("unknown_model_config", "GET", "/v2/models/unknown/config"))
    c.append(grpc_case("unknown_model_config", "ModelConfig", pb.ModelConfigRequest(name="unknown")))
    c.append(http_case("unknown_model_stats", "GET", "/v2/models/unknown/stats"))
    c.append(grpc_case("unknown_model_stats", "ModelStatistics", pb.ModelStatisticsRequest(name="unknown")))
    # routing
    c.append(http_case("unknown_path", "GET", "/v2/foo"))
    c.append(http_case("unknown_path_post", "POST", "/v2/foo", b"{}"))
    c.append(http_case("unknown_model_subpath", "GET", "/v2/models/add_sub/foo"))
    c.append(http_case("root_path", "GET", "/"))
    c.append(http_case("wrong_method_get_infer", "GET", INFER))
    c.append(http_case("wrong_method_post_health_live", "POST", "/v2/health/live", b""))
    c.append(http_case("wrong_method_post_metadata", "POST", "/v2/models/add_sub", b"{}"))
    c.append(http_case("wrong_method_get_repository_index", "GET", "/v2/repository/index"))
    c.append(grpc_raw_case("unknown_rpc", "NoSuchRpc", b""))
    c.append(grpc_raw_case("garbage_request_bytes", "ModelInfer", b"\xff\xff\xff\xff", note="not a valid protobuf"))
    return c


def golden_cases():
    c = []
    for p in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/add_sub",
        "/v2/models/add_sub/versions/1",
        "/v2/models/add_sub/config",
        "/v2/models/add_sub/versions/1/config",
        "/v2/models/add_sub/ready",
        "/v2/models/add_sub/versions/1/ready",
        "/v2/models/identity_batched",
        "/v2/models/identity_batched/config",
        "/v2/models/identity/config",
        "/v2/models/identity_fp16/config",
        "/v2/models/string_upper",
        "/v2/models/string_upper/config",
        "/v2/models/labels",
        "/v2/models/labels/config",
        "/v2/models/exec_fails/config",
    ):
        c.append(http_case("get" + p.replace("/", "_"), "GET", p))
    c.append(http_case("repository_index", "POST", "/v2/repository/index", b""))
    c.append(http_case("repository_index_ready_only", "POST", "/v2/repository/index", jbody({"ready": True})))
    c.append(grpc_case("server_live", "ServerLive", pb.ServerLiveRequest()))
    c.append(grpc_case("server_ready", "ServerReady", pb.ServerReadyRequest()))
    c.append(grpc_case("server_metadata", "ServerMetadata", pb.ServerMetadataRequest()))
    c.append(grpc_case("model_metadata_add_sub", "ModelMetadata", pb.ModelMetadataRequest(name="add_sub")))
    c.append(
        grpc_case("model_metadata_add_sub_v1", "ModelMetadata", pb.ModelMetadataRequest(name="add_sub", version="1"))
    )
    c.append(grpc_case("model_metadata_string_upper", "ModelMetadata", pb.ModelMetadataRequest(name="string_upper")))
    c.append(grpc_case("model_ready_add_sub", "ModelReady", pb.ModelReadyRequest(name="add_sub")))
    for m in ("add_sub", "identity_batched", "identity", "labels", "string_upper"):
        c.append(grpc_case(f"model_config_{m}", "ModelConfig", pb.ModelConfigRequest(name=m)))
    c.append(grpc_case("repository_index", "RepositoryIndex", pb.RepositoryIndexRequest()))
    c.append(grpc_case("repository_index_ready_only", "RepositoryIndex", pb.RepositoryIndexRequest(ready=True)))

    # --- inference, HTTP
    c.append(http_case("add_sub_infer_json", "POST", INFER, jbody(add_sub_json())))
    c.append(http_case("add_sub_infer_json_v1", "POST", "/v2/models/add_sub/versions/1/infer", jbody(add_sub_json())))
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ],
            "parameters": {"binary_data_output": True},
        },
        fp32(*A),
        fp32(*B),
    )
    c.append(http_case("add_sub_infer_binary_in_out", "POST", INFER, body, h))
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
            ]
        },
        fp32(*A),
        fp32(*B),
    )
    c.append(http_case("add_sub_infer_binary_in_json_out", "POST", INFER, body, h))
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
                in0(name="INPUT1", data=B),
            ]
        },
        fp32(*A),
    )
    c.append(http_case("add_sub_infer_mixed_binary_json_inputs", "POST", INFER, body, h))
    c.append(
        http_case(
            "add_sub_infer_single_output_binary",
            "POST",
            INFER,
            jbody(add_sub_json(outputs=[{"name": "OUTPUT0", "parameters": {"binary_data": True}}])),
        )
    )
    c.append(
        http_case(
            "add_sub_infer_one_binary_one_json_output",
            "POST",
            INFER,
            jbody(
                add_sub_json(outputs=[{"name": "OUTPUT1", "parameters": {"binary_data": True}}, {"name": "OUTPUT0"}])
            ),
        )
    )
    c.append(
        http_case("add_sub_infer_single_output_json", "POST", INFER, jbody(add_sub_json(outputs=[{"name": "OUTPUT1"}])))
    )
    c.append(
        http_case(
            "add_sub_infer_id_and_parameters",
            "POST",
            INFER,
            jbody(
                add_sub_json(
                    id="my-request-42", parameters={"custom_str": "hello", "custom_int": 7, "custom_bool": True}
                )
            ),
        )
    )
    c.append(
        http_case(
            "add_sub_infer_nested_json_data",
            "POST",
            INFER,
            jbody(
                {
                    "inputs": [
                        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [[1.0, 2.0], [3.0, 4.0]]},
                        IN1,
                    ]
                }
            ),
            note="duplicate of json_nested_data kept under a golden name",
        )
    )
    c.append(
        http_case(
            "add_sub_infer_int_json_values",
            "POST",
            INFER,
            jbody({"inputs": [in0(data=[1, 2, 3, 4]), IN1]}),
            note="JSON integers for an FP32 input",
        )
    )
    c.append(
        http_case(
            "string_upper_json",
            "POST",
            "/v2/models/string_upper/infer",
            jbody({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [2], "data": ["hello", "Wörld"]}]}),
        )
    )
    sb = bytes_tensor(b"hello", "Wörld".encode())
    body, h = binary_body(
        {
            "inputs": [
                {"name": "TEXT", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(sb)}}
            ],
            "outputs": [
                {"name": "UPPER", "parameters": {"binary_data": True}},
                {"name": "LENGTH", "parameters": {"binary_data": True}},
            ],
        },
        sb,
    )
    c.append(http_case("string_upper_binary", "POST", "/v2/models/string_upper/infer", body, h))

    def scale(v):
        return [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [v]}]

    for k, cls_body in (
        ("json", {"inputs": scale(2.0), "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2}}]}),
        (
            "binary",
            {
                "inputs": scale(2.0),
                "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2, "binary_data": True}}],
            },
        ),
        ("all_classes", {"inputs": scale(1.0), "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 4}}]}),
        ("plain", {"inputs": scale(1.0)}),
    ):
        c.append(http_case(f"labels_classification_{k}", "POST", "/v2/models/labels/infer", jbody(cls_body)))
    c.append(
        http_case(
            "identity_fp16_json",
            "POST",
            "/v2/models/identity_fp16/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP16", "shape": [3], "data": [1.0, 2.5, -3.0]}]}),
        )
    )
    fp16 = np.asarray([1.0, 2.5, -3.0], dtype=np.float16).tobytes()
    body, h = binary_body(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP16", "shape": [3], "parameters": {"binary_data_size": len(fp16)}}
            ],
            "parameters": {"binary_data_output": True},
        },
        fp16,
    )
    c.append(http_case("identity_fp16_binary", "POST", "/v2/models/identity_fp16/infer", body, h))
    for n in (2, 4):
        c.append(
            http_case(
                f"identity_batched_batch{n}",
                "POST",
                "/v2/models/identity_batched/infer",
                jbody(
                    {
                        "inputs": [
                            {
                                "name": "INPUT0",
                                "datatype": "FP32",
                                "shape": [n, 4],
                                "data": [float(i) for i in range(4 * n)],
                            }
                        ]
                    }
                ),
            )
        )
    c.append(
        http_case(
            "identity_dynamic_shape",
            "POST",
            "/v2/models/identity/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 3], "data": [1.5, 2.5, 3.5]}]}),
        )
    )

    # --- inference, gRPC
    c.append(
        grpc_case("add_sub_infer_raw", "ModelInfer", infer_req("add_sub", [G_RAW0, G_RAW1], raw=[fp32(*A), fp32(*B)]))
    )
    c.append(grpc_case("add_sub_infer_typed_contents", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1])))
    c.append(
        grpc_case(
            "add_sub_infer_single_output", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1], outputs=["OUTPUT1"])
        )
    )
    c.append(
        grpc_case(
            "add_sub_infer_id_and_parameters",
            "ModelInfer",
            infer_req(
                "add_sub",
                [G_IN0, G_IN1],
                rid="my-request-42",
                parameters={"custom_str": "hello", "custom_int": 7, "custom_bool": True},
            ),
        )
    )
    c.append(grpc_case("add_sub_infer_v1", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1], version="1")))
    c.append(
        grpc_case(
            "string_upper_typed",
            "ModelInfer",
            infer_req("string_upper", [("TEXT", "BYTES", [2], "bytes_contents", [b"hello", "Wörld".encode()])]),
        )
    )
    c.append(
        grpc_case(
            "string_upper_raw", "ModelInfer", infer_req("string_upper", [("TEXT", "BYTES", [2], None, None)], raw=[sb])
        )
    )
    c.append(
        grpc_case(
            "labels_classification",
            "ModelInfer",
            infer_req(
                "labels",
                [("INPUT0", "FP32", [1], "fp32_contents", [2.0])],
                outputs=[("OUTPUT0", {"classification": 2})],
            ),
        )
    )
    c.append(
        grpc_case(
            "identity_fp16_raw",
            "ModelInfer",
            infer_req("identity_fp16", [("INPUT0", "FP16", [3], None, None)], raw=[fp16]),
        )
    )
    c.append(
        grpc_case(
            "identity_batched_batch2",
            "ModelInfer",
            infer_req("identity_batched", [("INPUT0", "FP32", [2, 4], "fp32_contents", [float(i) for i in range(8)])]),
        )
    )
    return c


def crash_cases():
    """Cases that take the reference server down; run last, after perf_analyzer."""
    return [
        http_case(
            "class_count_on_bytes_output",
            "POST",
            "/v2/models/string_upper/infer",
            jbody(
                {
                    "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
                    "outputs": [{"name": "UPPER", "parameters": {"classification": 1}}],
                }
            ),
            note="classification on a BYTES output: Triton 2.51 crashes (connection dropped, process gone)",
        )
    ]


def explicit_phase_cases():
    """Model-control-mode explicit, nothing loaded at start: the repository extension."""
    c = [
        http_case("repository_index_nothing_loaded", "POST", "/v2/repository/index", b""),
        grpc_case("repository_index_nothing_loaded", "RepositoryIndex", pb.RepositoryIndexRequest()),
    ]
    for m in ("bad_config", "init_fails", "unknown"):
        c.append(http_case(f"load_{m}", "POST", f"/v2/repository/models/{m}/load", b""))
        c.append(grpc_case(f"load_{m}", "RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name=m)))
    c.append(http_case("repository_index_after_failed_loads", "POST", "/v2/repository/index", b""))
    c.append(grpc_case("repository_index_after_failed_loads", "RepositoryIndex", pb.RepositoryIndexRequest()))
    c.append(http_case("bad_config_ready_after_failed_load", "GET", "/v2/models/bad_config/ready"))
    c.append(
        http_case(
            "bad_config_infer_after_failed_load",
            "POST",
            "/v2/models/bad_config/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": A}]}),
        )
    )
    c.append(
        http_case(
            "init_fails_infer_after_failed_load",
            "POST",
            "/v2/models/init_fails/infer",
            jbody({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": A}]}),
        )
    )
    c.append(http_case("add_sub_ready_before_load", "GET", "/v2/models/add_sub/ready"))
    c.append(http_case("add_sub_infer_before_load", "POST", INFER, jbody(add_sub_json())))
    c.append(grpc_case("add_sub_infer_before_load", "ModelInfer", infer_req("add_sub", [G_IN0, G_IN1])))
    c.append(http_case("load_add_sub", "POST", "/v2/repository/models/add_sub/load", b""))
    c.append(http_case("add_sub_ready_after_load", "GET", "/v2/models/add_sub/ready"))
    c.append(http_case("unload_add_sub", "POST", "/v2/repository/models/add_sub/unload", b""))
    c.append(http_case("add_sub_ready_after_unload", "GET", "/v2/models/add_sub/ready"))
    c.append(http_case("repository_index_after_unload", "POST", "/v2/repository/index", b""))
    c[-1]["settle_before"] = True  # capture waits until no model is LOADING/UNLOADING before sending
    c.append(grpc_case("load_add_sub", "RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="add_sub")))
    c.append(
        grpc_case("unload_add_sub", "RepositoryModelUnload", pb.RepositoryModelUnloadRequest(model_name="add_sub"))
    )
    c.append(http_case("unload_unknown", "POST", "/v2/repository/models/unknown/unload", b""))
    c.append(
        grpc_case("unload_unknown", "RepositoryModelUnload", pb.RepositoryModelUnloadRequest(model_name="unknown"))
    )
    return c


def ready_phase_cases():
    return [
        http_case("get_v2_health_ready", "GET", "/v2/health/ready"),
        http_case("repository_index", "POST", "/v2/repository/index", b""),
        grpc_case("server_ready", "ServerReady", pb.ServerReadyRequest()),
    ]


# --------------------------------------------------------------------------- server control


def http_get_status(path):
    try:
        conn = http.client.HTTPConnection("localhost", HTTP_PORT, timeout=2)
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    except OSError:
        return None


def settled():
    """True once no model in the repository index is still loading."""
    try:
        conn = http.client.HTTPConnection("localhost", HTTP_PORT, timeout=2)
        conn.request("POST", "/v2/repository/index", body=b"")
        idx = json.loads(conn.getresponse().read())
    except (OSError, ValueError):
        return False
    return all(m.get("state") in (None, "READY", "UNAVAILABLE") for m in idx)


def start_server(repo: Path, log_path: Path, extra=()):
    cmd = [str(RUN_TRITON), str(repo), str(HTTP_PORT), str(GRPC_PORT), str(METRICS_PORT), "--", *SERVER_FLAGS, *extra]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tritonserver exited with {proc.returncode}; see {log_path}")
        if http_get_status("/v2/health/live") == 200 and settled():
            time.sleep(0.5)
            return proc, cmd
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError("tritonserver did not come up")


def stop_server(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)  # run-triton.sh execs tritonserver: this is its pid
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_cases(cases, allow_crash=False):
    channel = grpc.insecure_channel(f"localhost:{GRPC_PORT}")
    for case in cases:
        if case.get("settle_before"):
            deadline = time.time() + 60
            while not settled() and time.time() < deadline:
                time.sleep(0.2)
        case["answer"] = do_http(case) if case["protocol"] == "http" else do_grpc(channel, case)
        a = case["answer"]
        print(
            f"{case['protocol']:4} {case['id']:45} {a.get('status', a.get('code'))} "
            f"{str(a.get('json', a.get('details', a.get('connection_error'))))[:150]}",
            flush=True,
        )
        alive = http_get_status("/v2/health/live") == 200
        if allow_crash:
            case["server_alive_after"] = alive
        elif not alive:
            raise RuntimeError(f"server not live after case {case['id']}")
    channel.close()
    return cases


def log_excerpts(log_text: str):
    pat = re.compile(r"bad_config|init_fails|exec_fails|exec_raises|libprotobuf|boom|on purpose")
    lines = log_text.splitlines()
    out = [ln for ln in lines if pat.search(ln)]
    table = []  # the model status table printed at startup
    for i, ln in enumerate(lines):
        if "| Model " in ln and "| Version |" in ln:
            j = i - 1
            while j < len(lines) and (lines[j].startswith("+") or lines[j].startswith("|")):
                table.append(lines[j])
                j += 1
            break
    return {"matching_lines": out, "model_status_table": table}


def run_perf_analyzer():
    runs = []
    for proto_args in ([], ["-i", "grpc", "-u", f"localhost:{GRPC_PORT}"]):
        args = [str(PERF_ANALYZER), "-m", "add_sub", "--concurrency-range", "1:1", "--measurement-interval", "2000"]
        args += proto_args or ["-u", f"localhost:{HTTP_PORT}"]
        t0 = time.time()
        p = subprocess.run(args, capture_output=True, text=True, timeout=300)
        lines = p.stdout.splitlines()
        summary = [
            ln
            for ln in lines
            if re.search(
                r"Concurrency: \d+, throughput|Inferences/Second vs\. Client|Client:|Request count|"
                r"Throughput|Avg latency|Avg HTTP time|Avg gRPC time|p\d\d latency",
                ln,
            )
        ]
        runs.append(
            {
                "protocol": "grpc" if proto_args else "http",
                "command": " ".join(["perf_analyzer"] + args[1:]),
                "returncode": p.returncode,
                "wall_s": round(time.time() - t0, 1),
                "first_lines": lines[:40],
                "summary_lines": summary,
                "stderr_tail": p.stderr.splitlines()[-20:],
            }
        )
    return runs


def _fmt_http(a):
    if a.get("connection_error"):
        return "connection dropped (server crashed)"
    j = a.get("json")
    ct = a["headers"].get("content-type", "")
    if isinstance(j, dict) and "error" in j:
        return f"{a['status']} `{ct}` `{json.dumps(j['error'], ensure_ascii=False)[1:-1]}`"
    return f"{a['status']} `{ct}` " + ("(empty body)" if not a["body_b64"] else "(body)")


def _fmt_grpc(a):
    if a["code"] == "OK":
        rj = a.get("response_json")
        short = json.dumps(rj, ensure_ascii=False) if rj is not None else ""
        return "OK" + (f" `{short}`" if short and len(short) < 60 else "")
    return f"{a['code']} `{json.dumps(a['details'], ensure_ascii=False)[1:-1]}`"


def markdown_table(cases, which=None):
    """One row per case id, HTTP and gRPC side by side. which: None=all, 'errors', 'ok'."""
    rows, order = {}, []
    for c in cases:
        if c["id"] not in rows:
            rows[c["id"]] = {}
            order.append(c["id"])
        rows[c["id"]][c["protocol"]] = c
    out = ["| case | HTTP request | HTTP status, content-type, error | gRPC code, details |", "|---|---|---|---|"]
    for cid in order:
        h, g = rows[cid].get("http"), rows[cid].get("grpc")
        ok = (h is None or 0 < (h["answer"].get("status") or 0) < 300) and (g is None or g["answer"]["code"] == "OK")
        if (which == "errors" and ok) or (which == "ok" and not ok):
            continue
        req = f"{h['request']['method']} {h['request']['path']}" if h else ""
        row = f"| {cid} | {req} | {_fmt_http(h['answer']) if h else '—'} | {_fmt_grpc(g['answer']) if g else '—'} |"
        out.append(row.replace("\\n", "⏎"))  # messages are JSON-escaped; show newlines as ⏎
    return "\n".join(out)


def print_tables(path):
    d = json.loads(Path(path).read_text())
    print("#### Errors (main server)\n")
    print(markdown_table(d["cases"] + d["crash_cases"], "errors"))
    print("\n#### Successful cases (main server)\n")
    print(markdown_table(d["cases"], "ok"))
    print("\n#### Ready server (only loadable models)\n")
    print(markdown_table(d["ready_server"]["cases"]))
    print("\n#### Explicit model-control mode (in order)\n")
    print(markdown_table(d["explicit_mode"]["cases"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "triton_2.51.json"))
    ap.add_argument("--no-perf", action="store_true", help="skip perf_analyzer")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder with the server logs")
    ap.add_argument(
        "--table", action="store_true", help="only print the README's markdown tables from the existing --out file"
    )
    args = ap.parse_args()
    if args.table:
        print_tables(args.out)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="tritonlite-capture-"))
    log1 = tmp / "triton_full.log"
    proc, cmd = start_server(REPO, log1)
    try:
        cases = run_cases(error_cases() + golden_cases())
        perf = [] if args.no_perf else run_perf_analyzer()
        time.sleep(1)
        crashing = run_cases(crash_cases(), allow_crash=True)
    finally:
        stop_server(proc)
    log_text = log1.read_text(errors="replace")
    version = re.search(r"server_version\s*\|\s*(\S+)", log_text)

    # Phase 2: only the models that load -> server ready.
    good = tmp / "repository_good"
    for m in GOOD_MODELS:
        shutil.copytree(REPO / m, good / m, ignore=shutil.ignore_patterns("__pycache__"))
    proc2, cmd2 = start_server(good, tmp / "triton_good.log")
    try:
        ready_cases = run_cases(ready_phase_cases())
    finally:
        stop_server(proc2)

    # Phase 3: explicit model control, nothing loaded at start.
    proc3, cmd3 = start_server(REPO, tmp / "triton_explicit.log", ["--model-control-mode=explicit"])
    try:
        explicit_cases = run_cases(explicit_phase_cases())
    finally:
        stop_server(proc3)
    explicit_log = (tmp / "triton_explicit.log").read_text(errors="replace")

    result = {
        "triton_version": version.group(1) if version else None,
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "server_command": ["run-triton.sh", "tests/data/repository", *cmd[2:]],
        "repository": "tests/data/repository",
        "repository_abs_path_at_capture": str(REPO),
        "note": (
            "Answers are recorded verbatim. Some texts contain the absolute repository path "
            "at capture time (repository_abs_path_at_capture); replace it when replaying."
        ),
        "cases": cases,
        "crash_cases": crashing,
        "ready_server": {
            "description": (
                "Triton started on a copy of the repository holding only "
                + ", ".join(GOOD_MODELS)
                + " (no bad_config, no init_fails)."
            ),
            "models": GOOD_MODELS,
            "server_command": ["run-triton.sh", "<copy of the good models>", *cmd2[2:]],
            "cases": ready_cases,
        },
        "explicit_mode": {
            "description": (
                "Triton started on tests/data/repository with --model-control-mode=explicit "
                "(nothing loaded at start); cases run in order and depend on each other."
            ),
            "server_command": ["run-triton.sh", "tests/data/repository", *cmd3[2:]],
            "cases": explicit_cases,
            "log_excerpts": log_excerpts(explicit_log),
        },
        "log_excerpts": log_excerpts(log_text),
        "perf_analyzer": perf,
    }
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if args.keep:
        print(f"server logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"wrote {args.out}: {len(cases)} cases + {len(ready_cases)} ready-server cases "
        f"+ {len(explicit_cases)} explicit-mode cases"
    )


if __name__ == "__main__":
    sys.exit(main())
