"""In-process infer calls per second on add_sub, beside the same over HTTP and a direct call.

    .venv/bin/python benchmarks/inprocess.py [--seconds 2] [--repeat 3] [--concurrency 8]

Rows, one call at a time unless it says so, each timed for ``--seconds`` after a short warm-up:

* direct execute: the model's ``TritonPythonModel.execute`` called in a loop on one
  ``pb_utils.InferenceRequest`` (the floor: no server at all);
* in-process infer: ``tritonlite.Server(...).model("add_sub").infer(...)`` read to the end;
* in-process async_infer, N in flight: ``async_infer`` from N coroutines on one caller loop;
* HTTP infer: ``tritonclient.http`` against a ``tritonlite-server`` subprocess on loopback.

Both servers start once; every repeat measures every row in turn. Prints each row's median
calls/s and microseconds per call, then the median over the repeats of the ratios taken within a
repeat (paired, so that a busy moment of a shared machine weighs on both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = ROOT / "examples" / "model_repository"
A = np.arange(4, dtype=np.float32)
B = np.ones(4, dtype=np.float32)


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``call`` in a loop, after a warm-up of a tenth of the time."""
    for deadline in (time.perf_counter() + seconds / 10, None):
        count = 0
        start = time.perf_counter()
        end = deadline if deadline is not None else start + seconds
        while True:
            for _ in range(50):
                call()
            count += 50
            now = time.perf_counter()
            if now >= end:
                break
    return count / (now - start)


def direct_call() -> Callable[[], object]:
    """One execute of add_sub's model.py, called directly (no server)."""
    from tritonlite.backends.python import triton_python_backend_utils as pb_utils

    sys.modules.setdefault("triton_python_backend_utils", pb_utils)
    spec = importlib.util.spec_from_file_location("add_sub_model", REPOSITORY / "add_sub" / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    outputs = [{"name": f"OUTPUT{i}", "data_type": "TYPE_FP32", "dims": [4]} for i in range(2)]
    model.initialize({"model_config": json.dumps({"name": "add_sub", "output": outputs})})
    request = pb_utils.InferenceRequest(
        model_name="add_sub",
        inputs=[pb_utils.Tensor("INPUT0", A), pb_utils.Tensor("INPUT1", B)],
        requested_output_names=[],
    )
    return lambda: model.execute([request])


def async_rate(model, seconds: float, concurrency: int) -> float:
    inputs = {"INPUT0": A, "INPUT1": B}

    async def one() -> None:
        async for _ in model.async_infer(inputs=inputs):
            pass

    async def measure() -> float:
        async def batch() -> None:
            await asyncio.gather(*(one() for _ in range(concurrency)))

        for _ in range(20):
            await batch()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await batch()
            count += concurrency
        return count / (time.perf_counter() - start)

    return asyncio.run(measure())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_server() -> tuple[subprocess.Popen, Callable[[], object]]:
    """A tritonlite-server subprocess serving add_sub, and one tritonclient.http infer call to it."""
    import tritonclient.http as httpclient

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tritonlite", f"--model-repository={REPOSITORY}", "--model-control-mode=explicit",
         "--load-model=add_sub", f"--http-port={port}", "--http-address=127.0.0.1", "--allow-grpc=false",
         "--allow-metrics=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.is_model_ready("add_sub"):
                break
        except Exception:  # not listening yet
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError("tritonlite-server did not start")
        time.sleep(0.1)
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    return server, lambda: client.infer("add_sub", inputs).as_numpy("OUTPUT0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    import tritonlite

    direct = direct_call()
    server = tritonlite.Server(
        model_repository=REPOSITORY,
        model_control_mode=tritonlite.ModelControlMode.EXPLICIT,
        startup_models=["add_sub"],
    ).start(wait_until_ready=True)
    model = server.model("add_sub")
    inputs = {"INPUT0": A, "INPUT1": B}
    http, http_call = http_server()
    names = ["direct execute (no server)", "in-process infer", f"in-process async_infer, {args.concurrency} in flight",
             "HTTP infer (tritonclient.http, c1)"]  # fmt: skip
    runs: list[list[float]] = []
    try:
        for _ in range(args.repeat):
            runs.append([
                rate(direct, args.seconds),
                rate(lambda: list(model.infer(inputs=inputs)), args.seconds),
                async_rate(model, args.seconds, args.concurrency),
                rate(http_call, args.seconds),
            ])  # fmt: skip
    finally:
        server.stop()
        http.terminate()
        http.wait(20)
    print(f"add_sub, median of {args.repeat}                       calls/s   us/call")
    for index, name in enumerate(names):
        value = statistics.median(run[index] for run in runs)
        print(f"{name:45s} {value:10.0f} {1e6 / value:9.1f}")

    def paired(top: int, bottom: int) -> float:
        return statistics.median(run[top] / run[bottom] for run in runs)

    print(f"in-process infer / HTTP infer (paired):         {paired(1, 3):6.2f}x")
    print(f"in-process async_infer / HTTP infer (paired):   {paired(2, 3):6.2f}x")
    print(f"in-process infer / direct execute (paired):     {paired(1, 0):6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
