"""Dynamic-batched ONNX MLP through tritonlite vs a direct onnxruntime loop (the physical limit).

    .venv/bin/python benchmarks/onnx_mlp.py [--concurrency 16] [--protocol http] [--hidden 4096 --layers 6] [--repeat 3]

The model is built here with onnx.helper into a temporary repository: an MLP (512 inputs, `layers`
hidden layers of `hidden` units, 10 outputs) big enough that a batch costs ~15 ms of compute on 2 cores,
so the comparison says how much of the machine the server leaves to the model. (The 16 -> 32 -> 4
example classifier computes a batch in microseconds; any server measured against it only measures
its own request overhead.) Config: max_batch_size = concurrency, dynamic batching with that
preferred size and a 10 ms queue delay (so the 16 clients' requests meet again in one batch
after each response instead of splitting into two half batches), one CPU instance,
onnxruntime's default threads (as the direct loop).

perf_analyzer sends single-row requests at the given concurrency, after a short warm-up run that is
not kept (the direct loop, likewise, runs a few batches before it measures); the direct loop runs
InferenceSession.run on batches of `concurrency` rows in this process. Both run on the same
machine, alternating `--repeat` times; medians are reported. Writes benchmarks/results/onnx_mlp.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from compare import PERF_ANALYZER, RESULTS, launch, perf_analyzer_missing, stop
from suite import median_of, ratio

INPUTS, OUTPUTS = 512, 10


def build_model(path: Path, hidden: int, layers: int) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    widths = [INPUTS] + [hidden] * layers + [OUTPUTS]
    nodes, weights, current = [], [], "INPUT0"
    for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False)):
        scale = np.float32(1 / np.sqrt(fan_in))
        weights.append(numpy_helper.from_array(rng.standard_normal((fan_in, fan_out), np.float32) * scale, f"W{index}"))
        weights.append(numpy_helper.from_array(np.zeros(fan_out, np.float32), f"B{index}"))
        last = index == len(widths) - 2
        nodes.append(helper.make_node("MatMul", [current, f"W{index}"], [f"M{index}"]))
        nodes.append(helper.make_node("Add", [f"M{index}", f"B{index}"], ["OUTPUT0" if last else f"A{index}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"A{index}"], [f"R{index}"]))
            current = f"R{index}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", INPUTS])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", OUTPUTS])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tritonlite")
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def write_repository(root: Path, hidden: int, layers: int, batch: int, extra: str = "") -> None:
    """The mlp_large model and its config (``extra``: more config.pbtxt text, e.g. parameters)."""
    folder = root / "mlp_large"
    build_model(folder / "1" / "model.onnx", hidden, layers)
    (folder / "config.pbtxt").write_text(
        f'name: "mlp_large"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {batch}\n'
        f'input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [ {INPUTS} ] }}]\n'
        f'output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ {OUTPUTS} ] }}]\n'
        f"dynamic_batching {{ preferred_batch_size: [ {batch} ] max_queue_delay_microseconds: 10000 }}\n"
        'instance_group [{ kind: KIND_CPU count: 1 }]\n' + extra
    )


def direct(model: Path, batch: int, seconds: float = 5.0) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, INPUTS)).astype(np.float32)
    for _ in range(5):
        session.run(["OUTPUT0"], {"INPUT0": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(["OUTPUT0"], {"INPUT0": x})
        runs += 1
    elapsed = time.perf_counter() - start
    return {"throughput": round(batch * runs / elapsed, 1), "batch_ms": round(1000 * elapsed / runs, 3)}


def perf_analyzer(
    port: int, concurrency: int, protocol: str = "http", model: str = "mlp_large"
) -> tuple[float | None, str]:
    """perf_analyzer's infer/s against ``model`` on ``port`` (None if it found none), and
    its output; after a warm-up run that is not kept (as the direct loop runs a few batches before
    it measures): the first second of a fresh server is slow (weights paged in, first runs)."""
    command = [str(PERF_ANALYZER), "-m", model, "-i", protocol, "-u", f"127.0.0.1:{port}",
               "--concurrency-range", f"{concurrency}:{concurrency}"]  # fmt: skip
    subprocess.run([*command, "--measurement-interval", "1000", "--stability-percentage", "1000",
                    "--max-trials", "2"], capture_output=True, timeout=300)  # fmt: skip
    out = subprocess.run(
        [*command, "--measurement-interval", "5000", "--stability-percentage", "100", "--max-trials", "4"],
        capture_output=True, text=True, timeout=600,
    )
    text = out.stdout + out.stderr
    found = re.search(r"Throughput: ([\d.]+) infer/sec", text)
    return (float(found.group(1)) if found else None), text


def served(repository: Path, concurrency: int, protocol: str) -> dict:
    server, _ = launch("tritonlite", repository, (8110, 8111, 8112))
    try:
        throughput, text = perf_analyzer(8110 if protocol == "http" else 8111, concurrency, protocol)
        stats = json.loads(urllib.request.urlopen("http://127.0.0.1:8110/v2/models/mlp_large/stats").read())
    finally:
        stop(server)
    model = stats["model_stats"][0]
    batches = {b["batch_size"]: b["compute_infer"]["count"] for b in model.get("batch_stats", [])}
    return {
        "throughput": throughput,
        "mean_batch": round(model["inference_count"] / max(model["execution_count"], 1), 2),
        "executions_by_batch_size": batches,
        "tail": "" if throughput else text[-300:],
    }


def model_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's shape, shared by the ONNX benchmarks: clients (= batch size) and the MLP's size."""
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=6)


def main() -> int:
    parser = argparse.ArgumentParser()
    model_arguments(parser)
    parser.add_argument("--protocol", default="http", choices=["http", "grpc"])
    parser.add_argument("--config", default="", help="more config.pbtxt text for the served model")
    parser.add_argument("--repeat", type=int, default=3, help="alternating served/direct runs; medians reported")
    args = parser.parse_args()
    if perf_analyzer_missing():
        return 2
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        write_repository(repository, args.hidden, args.layers, args.concurrency, args.config)
        result = {"concurrency": args.concurrency, "protocol": args.protocol, "hidden": args.hidden,
                  "layers": args.layers, "config": args.config}  # fmt: skip
        runs: dict[str, list[dict]] = {"tritonlite": [], "direct_onnxruntime": []}
        for _ in range(args.repeat):
            runs["tritonlite"].append(served(repository, args.concurrency, args.protocol))
            runs["direct_onnxruntime"].append(direct(repository / "mlp_large" / "1" / "model.onnx", args.concurrency))
        result["runs"] = runs
    for name, found in runs.items():
        values = [r["throughput"] for r in found if r["throughput"]]
        result[name] = round(statistics.median(values), 1) if values else None
    lite, limit = result["tritonlite"], result["direct_onnxruntime"]
    result["ratio"] = round(lite / limit, 3) if lite and limit else None
    pairs = zip(runs["tritonlite"], runs["direct_onnxruntime"], strict=True)  # one pair per repeat
    result["paired_ratio"] = median_of([ratio(served["throughput"], alone["throughput"]) for served, alone in pairs])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_mlp.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
