"""In-process infer calls per second on add_sub, beside the same over HTTP and a direct call.

    .venv/bin/python benchmarks/inprocess.py [--seconds 3] [--concurrency 8]

Rows, each timed for ``--seconds`` after a short warm-up, one call at a time unless it says so:

* direct execute: the model's ``TritonPythonModel.execute`` called in a loop on one
  ``pb_utils.InferenceRequest`` (the floor: no server at all);
* in-process infer: ``tritonlite.Server(...).model("add_sub").infer(...)`` read to the end;
* in-process async_infer, N in flight: ``async_infer`` from N coroutines on one caller loop;
* HTTP infer: ``tritonclient.http`` against a ``tritonlite-server`` subprocess on loopback.

Prints calls/s and microseconds per call, then the ratios. On a shared machine the numbers move
by 10-20 % between runs; compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import socket
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
            for _ in range(100):
                call()
            count += 100
            now = time.perf_counter()
            if now >= end:
                break
    return count / (now - start)


def direct_execute(seconds: float) -> float:
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
    return rate(lambda: model.execute([request]), seconds)


def in_process(seconds: float, concurrency: int) -> tuple[float, float]:
    import tritonlite

    server = tritonlite.Server(model_repository=REPOSITORY, model_control_mode=tritonlite.ModelControlMode.EXPLICIT,
                               startup_models=["add_sub"]).start(wait_until_ready=True)  # fmt: skip
    try:
        model = server.model("add_sub")
        inputs = {"INPUT0": A, "INPUT1": B}
        sync = rate(lambda: list(model.infer(inputs=inputs)), seconds)

        async def many() -> float:
            async def one() -> None:
                async for _ in model.async_infer(inputs=inputs):
                    pass

            async def batch() -> None:
                await asyncio.gather(*(one() for _ in range(concurrency)))

            for _ in range(20):
                await batch()
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                await batch()
                count += concurrency
            return count / (time.perf_counter() - start)

        return sync, asyncio.run(many())
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def over_http(seconds: float) -> float:
    import tritonclient.http as httpclient

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tritonlite", f"--model-repository={REPOSITORY}", "--model-control-mode=explicit",
         "--load-model=add_sub", f"--http-port={port}", "--http-address=127.0.0.1", "--allow-grpc=false",
         "--allow-metrics=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.is_model_ready("add_sub"):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("tritonlite-server did not start")
            time.sleep(0.1)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(A)
        inputs[1].set_data_from_numpy(B)
        return rate(lambda: client.infer("add_sub", inputs).as_numpy("OUTPUT0"), seconds)
    finally:
        server.terminate()
        server.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    direct = direct_execute(args.seconds)
    sync, many = in_process(args.seconds, args.concurrency)
    http = over_http(args.seconds)
    rows = [
        ("direct execute (no server)", direct),
        ("in-process infer", sync),
        (f"in-process async_infer, {args.concurrency} in flight", many),
        ("HTTP infer (tritonclient.http, c1)", http),
    ]
    print(f"{'add_sub':45s} {'calls/s':>10s} {'us/call':>9s}")
    for name, value in rows:
        print(f"{name:45s} {value:10.0f} {1e6 / value:9.1f}")
    print(f"in-process / HTTP:           {sync / http:5.2f}x the calls/s")
    print(f"in-process / direct execute: {sync / direct:5.2f} of the floor")
    print(f"async {args.concurrency} in flight / HTTP:  {many / http:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
