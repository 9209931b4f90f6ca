"""How close can any Python server come to the direct onnxruntime loop here? A floor for onnx_mlp.py.

    .venv/bin/python benchmarks/onnx_floor.py [--repeat 3]           # direct, floor server, tritonlite
    .venv/bin/python benchmarks/onnx_floor.py --serve --model-repository=REPO --http-port=PORT
                                                                     # the floor server alone

onnx_mlp.py compares tritonlite with `InferenceSession.run` in a loop, which has no client, no
sockets and no threads to wake. This file adds a third contestant: the least a Python server can
do for the same perf_analyzer run. One uvloop protocol per connection that finds a request's end
by its Content-Length, takes the last 2048 bytes of an infer body as the row (no JSON parsing,
no validation, no model lookup, no statistics), sixteen rows joined and run on one worker thread
(onnxruntime configured as tritonlite configures it), and answers from one precomputed header.
It is not a server anyone should run; it shows how much of the gap to the direct loop is the
machine's (perf_analyzer's CPU on the same 2 cores, the socket system calls, the thread wakes)
and how much is tritonlite's.

Same model, same perf_analyzer command and warm-up as onnx_mlp.py; the three run alternately,
`--repeat` times; medians and ratios to the direct loop. Writes benchmarks/results/onnx_floor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROW_BYTES = 512 * 4  # onnx_mlp.INPUTS float32 values
OUT_ROW_BYTES = 10 * 4


def _canned(model: str, batch: int) -> dict[bytes, bytes]:
    """The answers perf_analyzer needs before it sends infer requests (model metadata and config)."""
    metadata = {
        "name": model, "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 512]}],
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, 10]}],
    }  # fmt: skip
    config = {
        "name": model, "platform": "onnxruntime_onnx", "backend": "onnxruntime", "max_batch_size": batch,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [512]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [10]}],
        "dynamic_batching": {"preferred_batch_size": [batch], "max_queue_delay_microseconds": 10000},
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }  # fmt: skip
    return {
        f"/v2/models/{model}".encode(): json.dumps(metadata).encode(),
        f"/v2/models/{model}/config".encode(): json.dumps(config).encode(),
        b"/v2/health/ready": b"",
        b"/v2": json.dumps({"name": "triton", "version": "2.51.0", "extensions": ["model_configuration"]}).encode(),
    }


def serve(arguments: list[str]) -> None:
    """The floor server, started with the part of tritonlite's command line it needs (as
    compare.launch starts servers): the repository of onnx_mlp.write_repository and the HTTP port."""
    import re

    import onnxruntime as ort
    import uvloop

    parser = argparse.ArgumentParser()
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    options, _ = parser.parse_known_args(arguments)  # gRPC and metrics ports: not served
    folder = options.model_repository / "mlp_large"
    batch = int(re.search(r"max_batch_size: (\d+)", (folder / "config.pbtxt").read_text()).group(1))
    model_path, port = folder / "1" / "model.onnx", options.http_port

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as tritonlite
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    canned = _canned("mlp_large", batch)
    header = json.dumps({
        "model_name": "mlp_large", "model_version": "1",
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [1, 10],
                     "parameters": {"binary_data_size": OUT_ROW_BYTES}}],
    }, separators=(",", ":")).encode()  # fmt: skip
    prefix = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
        b"inference-header-content-length: " + str(len(header)).encode()
        + b"\r\ncontent-length: " + str(len(header) + OUT_ROW_BYTES).encode() + b"\r\n\r\n" + header
    )  # fmt: skip

    loop = uvloop.new_event_loop()
    jobs: list = []
    wake = threading.Condition()
    waiting: list = []  # (transport, row) of the batch being filled
    timer: list = [None]

    def worker() -> None:
        while True:
            with wake:
                while not jobs:
                    wake.wait()
                rows = jobs.pop(0)
            x = np.frombuffer(b"".join(row for _, row in rows), np.float32).reshape(len(rows), 512)
            out = session.run(["OUTPUT0"], {"INPUT0": x})[0]
            loop.call_soon_threadsafe(answer, rows, out)

    def answer(rows, out) -> None:
        for (transport, _), values in zip(rows, out, strict=True):
            transport.write(prefix + values.tobytes())

    def dispatch() -> None:
        if timer[0] is not None:
            timer[0].cancel()
            timer[0] = None
        if waiting:
            with wake:
                jobs.append(waiting[:])
                wake.notify()
            waiting.clear()

    class Connection(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                buffer = self.buffer
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                start = buffer.lower().find(b"\ncontent-length:", 0, end)  # not inference-header-...
                length = int(buffer[start + 16 : buffer.find(b"\r\n", start + 1)]) if start >= 0 else 0
                if len(buffer) < end + 4 + length:
                    return
                body_end = end + 4 + length
                self.buffer = buffer[body_end:]
                if buffer.startswith(b"POST "):
                    waiting.append((self.transport, buffer[body_end - ROW_BYTES : body_end]))
                    if len(waiting) >= batch:
                        dispatch()
                    elif timer[0] is None:
                        timer[0] = loop.call_later(0.01, dispatch)
                    continue
                path = buffer[buffer.find(b" ") + 1 : buffer.find(b" HTTP/")]
                body = canned.get(path)
                status = b"200 OK" if body is not None else b"400 Bad Request"
                body = body if body is not None else b'{"error":"not served by the floor server"}'
                self.transport.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body
                )  # fmt: skip

    threading.Thread(target=worker, daemon=True).start()
    server = loop.run_until_complete(loop.create_server(Connection, "127.0.0.1", port))
    try:
        loop.run_forever()
    finally:
        server.close()


def _floor_run(repository: Path, concurrency: int) -> dict:
    from compare import launch, stop
    from onnx_mlp import perf_analyzer

    server, _ = launch("tritonlite", repository, (8140, 8141, 8142), entry=(__file__, "--serve"))
    try:
        throughput, text = perf_analyzer(8140, concurrency)
    finally:
        stop(server)
    return {"throughput": throughput, "tail": "" if throughput else text[-300:]}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    import onnx_mlp
    from compare import RESULTS, perf_analyzer_missing
    from suite import median_of, ratio

    parser = argparse.ArgumentParser()
    onnx_mlp.model_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if perf_analyzer_missing():
        return 2
    runs: dict[str, list[dict]] = {"direct_onnxruntime": [], "floor_server": [], "tritonlite": []}
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        onnx_mlp.write_repository(repository, args.hidden, args.layers, args.concurrency)
        model_path = repository / "mlp_large" / "1" / "model.onnx"
        for _ in range(args.repeat):
            runs["direct_onnxruntime"].append(onnx_mlp.direct(model_path, args.concurrency))
            runs["floor_server"].append(_floor_run(repository, args.concurrency))
            runs["tritonlite"].append(onnx_mlp.served(repository, args.concurrency, "http"))
    result: dict = {"concurrency": args.concurrency, "hidden": args.hidden, "layers": args.layers, "runs": runs}
    for name, found in runs.items():
        values = [r["throughput"] for r in found if r["throughput"]]
        result[name] = round(statistics.median(values), 1) if values else None
    limit = result["direct_onnxruntime"]
    for name in ("floor_server", "tritonlite"):
        result[f"{name}_ratio"] = ratio(result[name], limit)
        pairs = zip(runs[name], runs["direct_onnxruntime"], strict=True)  # one pair per repeat
        paired = [ratio(served["throughput"], alone["throughput"]) for served, alone in pairs]
        result[f"{name}_paired_ratio"] = median_of(paired)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_floor.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
