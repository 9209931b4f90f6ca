"""The server's own cost per HTTP infer request, without a network or a client.

    .venv/bin/python benchmarks/http_path.py [--concurrency 16] [--seconds 5] [--repeat 3] [--profile]

Builds the tiny MLP of onnx_mlp.py (512 -> 16 -> 10; a batch computes in microseconds) with the
same config (dynamic batching, preferred size = concurrency), starts the engine and the HTTP app
in this process, and connects `concurrency` uvicorn protocol objects to in-memory transports.
Each round feeds every connection the bytes perf_analyzer sends for one request (captured with
strace) and waits until every answer has been written; the time per request is the event loop's
whole cost for it: HTTP parsing, decoding, queueing, batching, the model, encoding, the write
(to memory here: the socket system calls are not counted). Used to measure changes to the hot
path in microseconds, which perf_analyzer on a 2-core machine cannot resolve.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


class MemoryTransport:
    """Just enough of an asyncio transport for uvicorn's protocol; counts complete answers."""

    def __init__(self, written: list[int], done: asyncio.Event, expected: int) -> None:
        self.written, self.done, self.expected = written, done, expected

    status = b""

    def write(self, data: bytes) -> None:
        MemoryTransport.status = bytes(data[:12])  # the last answer's status line, checked after warm-up
        self.written[0] += 1
        if self.written[0] == self.expected:
            self.done.set()

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        pass


def request_bytes(model: str) -> bytes:
    """One single-row request of the MLP, byte for byte as perf_analyzer (libcurl) sends it."""
    import numpy as np

    header = (
        b'{"id":"","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,512],'
        b'"parameters":{"binary_data_size":2048}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}'
    )
    body = header + np.random.default_rng(1).standard_normal(512, np.float32).tobytes()
    return (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: libcurl-agent/1.0\r\n"
        f"Accept: */*\r\nInference-Header-Content-Length: {len(header)}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def measure(repository: Path, concurrency: int, seconds: float, repeat: int, evict_mb: int) -> list[float]:
    from uvicorn.server import ServerState

    from tritonlite.engine import Engine, EngineOptions
    from tritonlite.frontends.http.exchange import InferEndpoint
    from tritonlite.frontends.http.protocol import HttpConfig
    from tritonlite.frontends.http.routes import build_api
    from tritonlite.server import uvicorn_options

    engine = Engine(EngineOptions(repositories=[repository]))
    await engine.start()
    try:
        config = HttpConfig(build_api(engine), InferEndpoint(engine), **uvicorn_options("127.0.0.1", 8000))
        config.load()
        state = ServerState()
        written, done = [0], asyncio.Event()
        protocols = []
        for _ in range(concurrency):
            protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
            protocol.connection_made(MemoryTransport(written, done, concurrency))
            protocols.append(protocol)
        data = request_bytes("mlp_large")

        import numpy as np

        evictor = np.ones(evict_mb << 18, np.float32) if evict_mb else None

        async def rounds(count: int) -> float:
            """Seconds spent in `count` rounds, not counting the cache eviction between them."""
            spent = 0.0
            for _ in range(count):
                if evictor is not None:
                    np.add(evictor, 1.0, out=evictor)  # streams evict_mb through the caches, as a big model does
                written[0] = 0
                done.clear()
                started = time.perf_counter()
                for protocol in protocols:
                    protocol.data_received(data)
                await done.wait()
                await asyncio.sleep(0)  # let what answered them finish
                spent += time.perf_counter() - started
            return spent

        await rounds(200)  # warm-up
        if MemoryTransport.status != b"HTTP/1.1 200":
            raise SystemExit(f"the server did not answer 200 but {MemoryTransport.status!r}")
        per_request = []
        for _ in range(repeat):
            count, spent, started = 0, 0.0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                spent += await rounds(50)
                count += 50
            per_request.append(spent / (count * concurrency) * 1e6)
        for protocol in protocols:
            protocol.connection_lost(None)
        return per_request
    finally:
        await engine.stop()


def main() -> int:
    import onnx_mlp

    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evict", type=int, default=0, metavar="MB",
                        help="stream this many MB through the caches before each round (a large model's run "
                        "leaves the loop's code and data cold; 64 is past this machine's L3)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run instead")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        onnx_mlp.write_repository(repository, 16, 1, args.concurrency)
        run = measure(repository, args.concurrency, args.seconds, args.repeat, args.evict)
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            results = uvloop.run(run) if uvloop else asyncio.run(run)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        else:
            results = uvloop.run(run) if uvloop else asyncio.run(run)
    print(
        f"{args.concurrency} connections: "
        + ", ".join(f"{value:.1f}" for value in results)
        + f" us per request (median {statistics.median(results):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
