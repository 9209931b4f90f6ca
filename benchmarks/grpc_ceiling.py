"""How fast a Python gRPC server can answer ModelInfer at all: the ceiling under tritonlite's gRPC.

    .venv/bin/python benchmarks/grpc_ceiling.py [--concurrency 1 4 16] [--repeat 2] [--interval-ms 2000]

First it asks a running tritonlite every RPC perf_analyzer makes for ``add_sub`` (metadata, config,
statistics, one ModelInfer) and keeps the answers' bytes. Then it serves those bytes from bare
servers that run no model and parse no request: tritonlite's own transport (its HTTP/2 layer
on uvloop, ``tritonlite.frontends.grpc.transport``), grpc.aio, grpcio's thread-pool server and
grpclib (pure-Python HTTP/2; in the ``bench`` extra, skipped without it). The same perf_analyzer
command drives each of them, tritonlite and the real Triton, alternating; what a bare server
reaches is that library's own cost per call.

Needs perf_analyzer and the reference Triton (see compare.py). Writes
benchmarks/results/grpc_ceiling.json and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import compare
import grpc

SERVICE = "inference.GRPCInferenceService"
MODEL = "add_sub"
SERVERS = ("tritonlite transport bare", "grpc.aio bare", "grpcio threads bare", "grpclib bare", "tritonlite", "triton")
BARE_KINDS = {
    "tritonlite transport bare": "transport",
    "grpc.aio bare": "aio",
    "grpcio threads bare": "sync",
    "grpclib bare": "grpclib",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def capture(grpc_port: int) -> dict[str, bytes]:
    """The answers of a running server to the RPCs perf_analyzer makes, as bytes by method name."""
    from tritonlite.protocol import grpc_service_pb2 as pb

    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    requests = {
        "ServerLive": pb.ServerLiveRequest(),
        "ServerReady": pb.ServerReadyRequest(),
        "ServerMetadata": pb.ServerMetadataRequest(),
        "ModelReady": pb.ModelReadyRequest(name=MODEL),
        "ModelMetadata": pb.ModelMetadataRequest(name=MODEL),
        "ModelConfig": pb.ModelConfigRequest(name=MODEL),
        "ModelStatistics": pb.ModelStatisticsRequest(name=MODEL),
    }
    answers = {}
    for method, request in requests.items():
        call = channel.unary_unary(f"/{SERVICE}/{method}")
        answers[method] = call(request.SerializeToString())
    metadata = pb.ModelMetadataResponse.FromString(answers["ModelMetadata"])
    infer = pb.ModelInferRequest(model_name=MODEL)
    for tensor in metadata.inputs:
        shape = [max(d, 1) for d in tensor.shape]
        count = 1
        for d in shape:
            count *= d
        infer.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=shape)
        infer.raw_input_contents.append(bytes(4 * count))  # FP32 zeros
    answers["ModelInfer"] = channel.unary_unary(f"/{SERVICE}/ModelInfer")(infer.SerializeToString())
    channel.close()
    return answers


class Counted:
    """The prepared ModelStatistics answer with the calls served so far counted in, as perf_analyzer
    takes the server's side of its numbers from the difference between two of them."""

    def __init__(self, answer: bytes) -> None:
        from tritonlite.protocol import grpc_service_pb2 as pb

        self.stats = pb.ModelStatisticsResponse.FromString(answer)
        self.calls = 0

    def answer(self) -> bytes:
        for model in self.stats.model_stats:
            model.inference_count = model.execution_count = self.calls
            for duration in (model.inference_stats.success, model.inference_stats.queue,
                             model.inference_stats.compute_input, model.inference_stats.compute_infer,
                             model.inference_stats.compute_output):  # fmt: skip
                duration.count = self.calls
        return self.stats.SerializeToString()


def _handlers(answers: dict[str, bytes], wrap) -> grpc.GenericRpcHandler:
    counted = Counted(answers["ModelStatistics"])

    def respond(method: str):
        if method == "ModelInfer":
            answer = answers[method]

            def infer() -> bytes:
                counted.calls += 1
                return answer

            return infer
        if method == "ModelStatistics":
            return counted.answer
        answer = answers[method]
        return lambda: answer

    return grpc.method_handlers_generic_handler(
        SERVICE, {method: grpc.unary_unary_rpc_method_handler(wrap(respond(method))) for method in answers}
    )


def serve_grpclib(port: int, answers: dict[str, bytes]) -> None:
    """The same prepared answers from grpclib (pure Python HTTP/2 on h2) on uvloop."""
    import uvloop
    from grpclib.const import Cardinality, Handler
    from grpclib.encoding.base import CodecBase
    from grpclib.server import Server

    class Raw(CodecBase):
        __content_subtype__ = "proto"

        def encode(self, message, message_type):
            return message

        def decode(self, data, message_type):
            return data

    counted = Counted(answers["ModelStatistics"])

    def handler(method: str):
        async def answer(stream) -> None:
            await stream.recv_message()
            if method == "ModelInfer":
                counted.calls += 1
            await stream.send_message(counted.answer() if method == "ModelStatistics" else answers[method])

        return Handler(answer, Cardinality.UNARY_UNARY, bytes, bytes)

    class Service:
        def __mapping__(self):
            return {f"/{SERVICE}/{method}": handler(method) for method in answers}

    async def run() -> None:
        server = Server([Service()], codec=Raw())
        await server.start("127.0.0.1", port)
        await server.wait_closed()

    uvloop.run(run())


def serve_transport(port: int, answers: dict[str, bytes]) -> None:
    """The same prepared answers from tritonlite's gRPC transport on uvloop."""
    import uvloop

    from tritonlite.frontends.grpc.transport.call import Method
    from tritonlite.frontends.grpc.transport.server import GrpcServer

    counted = Counted(answers["ModelStatistics"])

    def handler(method: str):
        async def answer(request: bytes, call) -> bytes:
            if method == "ModelInfer":
                counted.calls += 1
            return counted.answer() if method == "ModelStatistics" else answers[method]

        return Method(answer, streaming=False)

    async def run() -> None:
        server = GrpcServer({f"/{SERVICE}/{method}": handler(method) for method in answers}, f"127.0.0.1:{port}")
        await server.start()
        await asyncio.Event().wait()

    uvloop.run(run())


def serve(kind: str, port: int, answers: dict[str, bytes]) -> None:
    """Answer every known RPC with its prepared bytes until killed."""
    if kind == "grpclib":
        serve_grpclib(port, answers)
        return
    if kind == "transport":
        serve_transport(port, answers)
        return
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    if kind == "aio":

        def wrap(respond):
            async def handler(request: bytes, context) -> bytes:
                return respond()

            return handler

        async def run() -> None:
            server = grpc.aio.server(options=options)
            server.add_generic_rpc_handlers((_handlers(answers, wrap),))
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            await server.wait_for_termination()

        asyncio.run(run())
        return

    def wrap_sync(respond):
        def handler(request: bytes, context) -> bytes:
            return respond()

        return handler

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    server.add_generic_rpc_handlers((_handlers(answers, wrap_sync),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def start_bare(kind: str, answers_file: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--answers", str(answers_file)]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{port}")).result(timeout=1)
            return process, port
        except grpc.FutureTimeoutError:
            continue
    process.kill()
    raise RuntimeError(f"the bare {kind} server did not start")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--interval-ms", type=int, default=2000)
    parser.add_argument("--serve", choices=sorted(BARE_KINDS.values()), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--answers", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        answers = {k: base64.b64decode(v) for k, v in json.loads(args.answers.read_text()).items()}
        serve(args.serve, args.port, answers)
        return 0
    if compare.perf_analyzer_missing(need_triton=True):
        return 2
    repository = compare.ROOT / "examples" / "model_repository"
    compare.RESULTS.mkdir(parents=True, exist_ok=True)
    answers_file = compare.RESULTS / "grpc_ceiling_answers.json"
    process, _, grpc_port = compare.start("tritonlite", repository)
    try:
        answers = capture(grpc_port)
    finally:
        compare.stop(process)
    answers_file.write_text(json.dumps({k: base64.b64encode(v).decode() for k, v in answers.items()}))

    servers = tuple(name for name in SERVERS if name != "grpclib bare" or importlib.util.find_spec("grpclib"))
    if "grpclib bare" not in servers:
        print("grpclib is not installed (pip install -e '.[bench]'): its row is skipped", file=sys.stderr)
    runs: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in args.concurrency} for name in servers}
    for repeat in range(args.repeat):
        order = servers if repeat % 2 == 0 else tuple(reversed(servers))
        for name in order:
            if name.endswith("bare"):
                process, port = start_bare(BARE_KINDS[name], answers_file)
            else:
                process, _, port = compare.start(name, repository)
            try:
                for concurrency in args.concurrency:
                    result = compare.measure(MODEL, "grpc", port, concurrency, args.interval_ms, [], [])
                    runs[name][concurrency].append(result)
                    print(f"{name} c{concurrency}: {result}", flush=True)
            finally:
                compare.stop(process)
    table = {name: {c: compare._median(results) for c, results in by_c.items()} for name, by_c in runs.items()}
    (compare.RESULTS / "grpc_ceiling.json").write_text(json.dumps({"runs": runs, "medians": table}, indent=1))
    print("| server | " + " | ".join(f"c{c} infer/s (p99 us)" for c in args.concurrency) + " |")
    print("|---" * (len(args.concurrency) + 1) + "|")
    for name in servers:
        cells = []
        for c in args.concurrency:
            m = table[name][c]
            cells.append(f"{m['throughput']:.0f} ({m['p99_us']})" if "throughput" in m else "error")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
