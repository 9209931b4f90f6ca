"""Dynamic-batched ONNX MLP through tritonlite vs a direct onnxruntime loop (the physical limit).

    .venv/bin/python benchmarks/onnx_mlp.py [--concurrency 16] [--protocol http]

tritonlite serves examples/onnx_model_repository (mlp: max_batch_size 32, dynamic batching);
perf_analyzer sends single-row requests at the given concurrency. The direct loop runs
InferenceSession.run on batches of `concurrency` rows on the same machine. Writes
benchmarks/results/onnx_mlp.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from compare import PERF_ANALYZER, RESULTS, ROOT  # noqa: E402


def direct(batch: int, seconds: float = 3.0) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(ROOT / "examples/onnx_model_repository/mlp/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).standard_normal((batch, 16)).astype(np.float32)
    for _ in range(100):
        session.run(["OUTPUT0"], {"INPUT0": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(["OUTPUT0"], {"INPUT0": x})
        runs += 1
    return batch * runs / (time.perf_counter() - start)


def served(concurrency: int, protocol: str) -> dict:
    cmd = [sys.executable, "-m", "tritonlite", f"--model-repository={ROOT / 'examples/onnx_model_repository'}",
           "--http-port=8110", "--grpc-port=8111", "--metrics-port=8112"]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        port = 8110 if protocol == "http" else 8111
        out = subprocess.run(
            [str(PERF_ANALYZER), "-m", "mlp", "-i", protocol, "-u", f"127.0.0.1:{port}",
             "--concurrency-range", f"{concurrency}:{concurrency}", "--measurement-interval", "3000",
             "--stability-percentage", "100", "--max-trials", "4"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    text = out.stdout + out.stderr
    found = re.search(r"Throughput: ([\d.]+) infer/sec", text)
    return {"throughput": float(found.group(1)) if found else None, "tail": text[-300:] if not found else ""}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--protocol", default="http", choices=["http", "grpc"])
    args = parser.parse_args()
    if not PERF_ANALYZER.exists():
        print("perf_analyzer not found: run ../shared/reference/setup.sh first", file=sys.stderr)
        return 2
    result = {"concurrency": args.concurrency, "protocol": args.protocol}
    result["tritonlite"] = served(args.concurrency, args.protocol)
    result["direct_onnxruntime"] = direct(args.concurrency)
    lite = result["tritonlite"]["throughput"]
    result["ratio"] = round(lite / result["direct_onnxruntime"], 3) if lite else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_mlp.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
