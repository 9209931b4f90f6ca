#!/usr/bin/env python3
"""Send mutated HTTP requests and gRPC messages, built from valid ones, to a live tritonlite server.

    python scripts/fuzz_server.py --requests 5000 --seed 7
    python scripts/fuzz_server.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 --pid 1234

Without --http/--grpc it starts a server of examples/model_repository's add_sub, identity and
string_upper on free ports. Findings: an answer that is a bug rather than Triton's refusal (HTTP
500 with no Triton error JSON, or tritonlite's 'internal error: <exception>' text; gRPC UNKNOWN or
'internal error:'), a request with no answer, a server that stops answering health, and open files
or threads that grow (read from /proc/PID before and after). Exit status 1 when there is any.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "model_repository"
MODELS = ("add_sub", "identity", "string_upper")
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Summary:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)  # "http 400", "grpc INVALID_ARGUMENT", ...
    findings: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # findings that are KNOWN defects
    resources_before: tuple[int, int] = (0, 0)  # (open fds, threads) of the server
    resources_after: tuple[int, int] = (0, 0)

    def text(self) -> str:
        lines = [f"sent {self.sent} mutated requests"]
        lines += [f"  {count:6d}  {status}" for status, count in sorted(self.statuses.items())]
        if self.resources_before != (0, 0):
            lines.append(f"server fds/threads: before {self.resources_before}, after {self.resources_after}")
        lines.append(f"known defects hit: {len(self.known)}")
        lines += [f"  {known}" for known in self.known[:10]]
        lines.append(f"findings: {len(self.findings)}")
        lines += [f"  {finding}" for finding in self.findings[:50]]
        return "\n".join(lines)


def resources(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


# --- valid requests to mutate ----------------------------------------------------------------------


def _binary_body(inputs: list[tuple[str, str, list[int], bytes]], outputs: list[str]) -> tuple[bytes, int]:
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}} for n, d, s, b in inputs
        ],
        "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
    }
    head = json.dumps(header).encode()
    return head + b"".join(b for *_, b in inputs), len(head)


def _bytes_element(text: bytes) -> bytes:
    return len(text).to_bytes(4, "little") + text


def valid_http() -> list[tuple[str, str, dict, bytes]]:
    """(method, path, headers, body) of valid requests."""
    four = np.arange(4, dtype=np.float32).tobytes()
    add_sub_json = {
        "id": "a",
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]},
        ],
        "outputs": [{"name": "OUTPUT0"}, {"name": "OUTPUT1", "parameters": {"binary_data": True}}],
    }
    binary, length = _binary_body([("INPUT0", "FP32", [4], four), ("INPUT1", "FP32", [4], four)], ["OUTPUT0"])
    text, text_length = _binary_body([("TEXT", "BYTES", [2], _bytes_element(b"ab") + _bytes_element(b"c"))], [])
    identity = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 3], "data": [[1, 2, 3]]}]}
    json_headers = {"Content-Type": "application/json"}
    return [
        ("POST", "/v2/models/add_sub/infer", json_headers, json.dumps(add_sub_json).encode()),
        ("POST", "/v2/models/add_sub/versions/1/infer", {"Inference-Header-Content-Length": str(length)}, binary),
        ("POST", "/v2/models/string_upper/infer", {"Inference-Header-Content-Length": str(text_length)}, text),
        ("POST", "/v2/models/identity/infer", json_headers, json.dumps(identity).encode()),
        ("GET", "/v2/models/add_sub", {}, b""),
        ("GET", "/v2/models/add_sub/config", {}, b""),
        ("GET", "/v2/models/add_sub/ready", {}, b""),
        ("GET", "/v2/models/add_sub/stats", {}, b""),
        ("POST", "/v2/repository/index", json_headers, b'{"ready": true}'),
        ("GET", "/v2/systemsharedmemory/status", {}, b""),
        ("POST", "/v2/systemsharedmemory/region/r/register", json_headers,
         b'{"key": "/tl_fuzz_missing", "offset": 0, "byte_size": 16}'),
        ("POST", "/v2/cudasharedmemory/region/c/register", json_headers,
         json.dumps({"raw_handle": {"b64": base64.b64encode(bytes(64)).decode()}, "device_id": 0,
                     "byte_size": 16}).encode()),
        ("GET", "/v2/trace/setting", {}, b""),
        ("GET", "/v2/logging", {}, b""),
        ("GET", "/v2", {}, b""),
    ]  # fmt: skip


def valid_grpc() -> list[bytes]:
    from tritonlite.protocol import grpc_service_pb2 as pb

    four = np.arange(4, dtype=np.float32).tobytes()
    add_sub = pb.ModelInferRequest(model_name="add_sub", id="g")
    for name in ("INPUT0", "INPUT1"):
        add_sub.inputs.add(name=name, datatype="FP32", shape=[4])
        add_sub.raw_input_contents.append(four)
    add_sub.outputs.add(name="OUTPUT1")
    contents = pb.ModelInferRequest(model_name="identity")
    tensor = contents.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    text = pb.ModelInferRequest(model_name="string_upper")
    text.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"abc")
    text.parameters["sequence_id"].int64_param = 3
    return [m.SerializeToString() for m in (add_sub, contents, text)]


# --- mutations -------------------------------------------------------------------------------------

JUNK = [None, True, -1, 0, 2**64, 1.5e308, "", "\x00", "A" * 300, [], [[]], {}, {"a": None}, "FP32", "BYTES", [-1],
        [1] * 70]  # fmt: skip

# Texts of defects that are known and tested as strict xfails: reported apart, not counted as
# findings. None is open now; a defect found and not yet fixed goes here with its xfail test.
KNOWN: tuple[str, ...] = ()


def _mutate_json(rng: random.Random, value, depth: int = 0):
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        choice = rng.random()
        if choice < 0.15:
            del value[key]
        elif choice < 0.25:
            value[rng.choice(["parameters", "shared_memory_region", "binary_data_size", "classification",
                              "sequence_id", "priority", "timeout", "data", "shape"])] = rng.choice(JUNK)  # fmt: skip
        else:
            value[key] = _mutate_json(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        choice = rng.random()
        if choice < 0.15:
            value.pop(index)
        elif choice < 0.25:
            value.append(value[index])
        else:
            value[index] = _mutate_json(rng, value[index], depth + 1)
        return value
    return rng.choice(JUNK)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if not data or kind < 0.4:
            data.insert(rng.randint(0, len(data)), rng.randrange(256))
        elif kind < 0.7:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind < 0.85:
            del data[rng.randrange(len(data)) :]
        else:
            start = rng.randrange(len(data))
            data[start:start] = data[start : start + rng.randint(1, 64)]
    return bytes(data)


def mutate_http(rng: random.Random, request: tuple[str, str, dict, bytes]) -> tuple[str, str, dict, bytes]:
    method, path, headers, body = request
    headers = dict(headers)
    choice = rng.random()
    if choice < 0.4 and body.startswith(b"{"):
        length = int(headers.get("Inference-Header-Content-Length", len(body)))
        try:
            document = _mutate_json(rng, json.loads(body[:length]))
            head = json.dumps(document).encode()
            body = head + body[length:]
            if "Inference-Header-Content-Length" in headers:
                headers["Inference-Header-Content-Length"] = str(len(head))
        except (ValueError, RecursionError):
            pass
    elif choice < 0.65:
        body = _mutate_bytes(rng, body)
    elif choice < 0.8:
        name = rng.choice(["Inference-Header-Content-Length", "Content-Encoding", "Accept-Encoding", "Content-Type"])
        headers[name] = rng.choice(["-1", "0", "99999999999999999999", "gzip", "deflate", "br", "x", "1e3"])
    elif choice < 0.9:
        parts = path.split("/")
        index = rng.randrange(1, len(parts))
        parts[index] = rng.choice(["", "..", "%00", "a" * 500, "%ff%fe", "1", "-1", "99999999999999999999", "\u00e9"])
        path = "/".join(parts)
    else:
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST"])
    return method, path, headers, body


def mutate_grpc(rng: random.Random, message: bytes) -> bytes:
    from tritonlite.protocol import grpc_service_pb2 as pb

    if rng.random() < 0.5:
        return _mutate_bytes(rng, message)
    request = pb.ModelInferRequest.FromString(message)
    choice = rng.random()
    if choice < 0.2 and request.inputs:
        tensor = rng.choice(request.inputs)
        tensor.datatype = rng.choice(["FP32", "BYTES", "INT64", "FP16", "BOOL", "", "X"])
    elif choice < 0.4 and request.inputs:
        tensor = rng.choice(request.inputs)
        del tensor.shape[:]
        tensor.shape.extend(rng.choice([[], [0], [-1], [2**62, 2**62], [4, 0, 2**40], [1] * 70]))
    elif choice < 0.6:
        target = rng.choice([request.parameters, *(t.parameters for t in request.inputs),
                             *(o.parameters for o in request.outputs)])  # fmt: skip
        key = rng.choice(["shared_memory_region", "shared_memory_byte_size", "classification", "sequence_id",
                          "sequence_start", "priority", "timeout", "binary_data_size"])  # fmt: skip
        field_name = rng.choice(["bool_param", "int64_param", "uint64_param", "string_param", "double_param"])
        setattr(target[key], field_name, {"bool_param": True, "string_param": "\x00x", "double_param": 1e300}.get(
            field_name, rng.choice([0, 1, 2**62])))  # fmt: skip
    elif choice < 0.8 and request.raw_input_contents:
        index = rng.randrange(len(request.raw_input_contents))
        request.raw_input_contents[index] = _mutate_bytes(rng, request.raw_input_contents[index])
    else:
        request.model_name = rng.choice(["", "add_sub\x00", "../add_sub", "x" * 300, "identity"])
        request.model_version = rng.choice(["", "1", "-1", "99999999999999999999", "a"])
    return request.SerializeToString()


# --- judging answers -------------------------------------------------------------------------------


def http_finding(status: int, body: bytes) -> str | None:
    """Why an HTTP answer is a bug, or None: a 5xx must be Triton's {"error": "..."} with a message of
    its own, not tritonlite's wrapper of an unhandled exception (or the framework's bare page)."""
    if status < 500:
        return None
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"{status} without Triton's error JSON: {body[:120]!r}"
    if not isinstance(message, str) or message.startswith("internal error:"):
        return f"{status} unhandled exception: {message!r:.200}"
    return None


def grpc_finding(code: grpc.StatusCode, details: str | None) -> str | None:
    if code == grpc.StatusCode.UNKNOWN or (details or "").startswith("internal error:"):
        return f"{code.name}: {details!r:.200}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer within the deadline"
    return None


def send_http(session: requests.Session, address: str, request) -> tuple[int, bytes]:
    method, path, headers, body = request
    url = f"http://{address}{path}"
    answer = session.request(method, url, headers=headers, data=body if method != "GET" else None, timeout=10)
    return answer.status_code, answer.content


def send_raw_http(address: str, data: bytes) -> bytes:
    """A whole request, mangled at the HTTP/1.1 level, over its own connection: what comes back."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def first_body(answer: bytes) -> bytes:
    """The body of the first HTTP answer in ``answer`` (a mangled head may read as two pipelined requests)."""
    head, _, rest = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return rest[: int(value)]
    return rest


def healthy(http: str, grpc_address: str) -> bool:
    try:
        if requests.get(f"http://{http}/v2/health/live", timeout=10).status_code != 200:
            return False
        with grpc.insecure_channel(grpc_address) as channel:
            channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=10)
        return True
    except (requests.RequestException, grpc.RpcError):
        return False


def warm_up(http: str, grpc_address: str, rounds: int = 5) -> None:
    """Valid requests on both protocols, so that lazily made threads and pools exist before counting."""
    with requests.Session() as session:
        for _ in range(rounds):
            for request in valid_http():
                send_http(session, http, request)
    with grpc.insecure_channel(grpc_address) as channel:
        call = channel.unary_unary(MODEL_INFER)
        for _ in range(rounds):
            for message in valid_grpc():
                call(message, timeout=10)


def fuzz(http: str, grpc_address: str, count: int, seed: int, pid: int | None = None) -> Summary:
    """``count`` mutated requests, about 60% HTTP (a tenth of those mangled on the wire) and 40% gRPC."""
    rng = random.Random(seed)
    summary = Summary()
    warm_up(http, grpc_address)
    if pid is not None:
        time.sleep(0.5)
        summary.resources_before = resources(pid)
    http_valid, grpc_valid = valid_http(), valid_grpc()
    with requests.Session() as session, grpc.insecure_channel(grpc_address) as channel:
        call = channel.unary_unary(MODEL_INFER)
        for index in range(count):
            summary.sent += 1
            kind = rng.random()
            try:
                if kind < 0.06:
                    method, path, headers, body = mutate_http(rng, rng.choice(http_valid))
                    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                    answer = send_raw_http(http, _mutate_bytes(rng, head.encode("utf-8", "replace")) + body)
                    status = int(answer[9:12]) if answer[:5] == b"HTTP/" and answer[9:12].isdigit() else 0
                    summary.statuses[f"http-raw {status or 'closed'}"] += 1
                    finding = http_finding(status, first_body(answer)) if status else None
                    if finding:
                        summary.findings.append(f"#{index} raw HTTP: {finding}")
                elif kind < 0.6:
                    request = mutate_http(rng, rng.choice(http_valid))
                    status, body = send_http(session, http, request)
                    summary.statuses[f"http {status}"] += 1
                    finding = http_finding(status, body)
                    if finding:
                        known = any(text in finding for text in KNOWN)
                        (summary.known if known else summary.findings).append(
                            f"#{index} {request[0]} {request[1][:80]}: {finding}"
                        )
                else:
                    message = mutate_grpc(rng, rng.choice(grpc_valid))
                    try:
                        call(message, timeout=10)
                        summary.statuses["grpc OK"] += 1
                    except grpc.RpcError as exc:
                        summary.statuses[f"grpc {exc.code().name}"] += 1
                        finding = grpc_finding(exc.code(), exc.details())
                        if finding:
                            summary.findings.append(f"#{index} ModelInfer: {finding}")
            except (requests.RequestException, OSError) as exc:
                summary.findings.append(f"#{index} no answer: {type(exc).__name__}: {exc}")
    if not healthy(http, grpc_address):
        summary.findings.append("the server no longer answers health")
    if pid is not None:
        warm_up(http, grpc_address, rounds=1)
        time.sleep(1.0)  # let closed connections be reaped
        summary.resources_after = resources(pid)
        before, after = summary.resources_before, summary.resources_after
        if after[0] > before[0] + 2 or after[1] > before[1] + 2:
            summary.findings.append(f"fds/threads grew: {before} -> {after}")
    return summary


def start_server(log: Path) -> tuple[subprocess.Popen, str, str]:
    """tritonlite serving add_sub, identity and string_upper from a copy of the examples, on free ports."""
    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    repo = Path(tempfile.mkdtemp(prefix="tl_fuzz_"))
    for name in MODELS:
        (repo / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    args = [sys.executable, "-m", "tritonlite", f"--model-repository={repo}",
            "--allow-symlinks-outside-repository=true",
            f"--http-port={ports[0]}", f"--grpc-port={ports[1]}", f"--metrics-port={ports[2]}",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    http, grpc_address = f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tritonlite exited:\n{log.read_text()}")
        try:
            if requests.get(f"http://{http}/v2/health/ready", timeout=1).status_code == 200:
                return process, http, grpc_address
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"tritonlite did not get ready:\n{log.read_text()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="how many mutated requests (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http", help="host:port of a running server (default: start one)")
    parser.add_argument("--grpc", help="host:port of its gRPC endpoint")
    parser.add_argument("--pid", type=int, help="the running server's process id, to watch its fds and threads")
    args = parser.parse_args()
    process = None
    log = Path(tempfile.gettempdir()) / f"tl_fuzz_server_{os.getpid()}.log"
    if args.http:
        http, grpc_address, pid = args.http, args.grpc, args.pid
    else:
        process, http, grpc_address = start_server(log)
        pid = process.pid
    try:
        summary = fuzz(http, grpc_address, args.requests, args.seed, pid)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    if process is not None:
        # every logged traceback is a finding, except those of the known defects (counted above)
        tracebacks = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
        unknown = [line for line in tracebacks if not any(text in line for text in KNOWN)]
        if unknown:
            summary.findings.append(f"the server logged {len(unknown)} traceback(s) (see {log})")
    print(summary.text())
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
