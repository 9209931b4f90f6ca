"""How long a running python model takes to see its request cancelled, thread and process mode.

    .venv/bin/python benchmarks/cancel_latency.py [--runs 20]

A model polls ``request.is_cancelled()`` every 0.5 ms and writes the wall-clock time it saw it; the
client sends a gRPC ModelInfer with ``client_timeout`` 0.2 s (the deadline, measured from when the
call starts) and, for the HTTP path, closes its socket 0.2 s after sending. The latency is the time
from the client's deadline (or close) to the model's note: the wire, the frontend noticing, the
core marking the request and, in process mode, the flag page. Prints a markdown table (median and
max, milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverutil import RunningServer  # noqa: E402

MODEL = """
import json, os, time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            end = time.monotonic() + 5
            while time.monotonic() < end and not r.is_cancelled():
                time.sleep(0.0005)
            with open(os.environ["TL_CANCEL_NOTES"], "a") as notes:
                notes.write(json.dumps([r.request_id(), time.time()]) + "\\n")
        return [pb_utils.InferenceResponse(error=pb_utils.TritonError("cancelled")) for r in requests]
"""
CONFIG = (
    'backend: "python"\nmax_batch_size: 0\n'
    'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
)
PROCESS = 'parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "process" } }\n'
DEADLINE_S = 0.2


def noted(notes: Path, rid: str) -> float:
    for _ in range(1000):
        for line in notes.read_text().splitlines():
            got, when = json.loads(line)
            if got == rid:
                return when
        time.sleep(0.005)
    raise RuntimeError(f"the model never noted {rid}")


def grpc_run(server: RunningServer, model: str, rid: str, notes: Path) -> float:
    client = grpcclient.InferenceServerClient(server.grpc)
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.ones([1], np.float32))
    start = time.time()
    try:
        client.infer(model, [tensor], request_id=rid, client_timeout=DEADLINE_S)
    except Exception:
        pass
    return noted(notes, rid) - (start + DEADLINE_S)


def http_run(server: RunningServer, model: str, rid: str, notes: Path) -> float:
    body = json.dumps({"id": rid, "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1]}]})
    host, port = server.http.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        time.sleep(DEADLINE_S)
        closed = time.time()
    return noted(notes, rid) - closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cancel-latency-"))
    for name, config in (("thread", CONFIG), ("process", CONFIG + PROCESS)):
        (root / "repo" / name / "1").mkdir(parents=True)
        (root / "repo" / name / "1" / "model.py").write_text(MODEL)
        (root / "repo" / name / "config.pbtxt").write_text(config)
    notes = root / "notes.log"
    notes.touch()
    os.environ["TL_CANCEL_NOTES"] = str(notes)
    server = RunningServer([root / "repo"])
    try:
        print("| path | mode | median ms | max ms |\n|---|---|---|---|")
        for path, run in (("gRPC deadline", grpc_run), ("HTTP close", http_run)):
            for mode in ("thread", "process"):
                run(server, mode, f"warm-{path}-{mode}", notes)
                waits = [run(server, mode, f"{path}-{mode}-{i}", notes) * 1e3 for i in range(args.runs)]
                print(f"| {path} | {mode} | {statistics.median(waits):.1f} | {max(waits):.1f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
