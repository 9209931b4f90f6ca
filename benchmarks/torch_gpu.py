"""A TorchScript MLP served from a KIND_GPU instance vs a direct loop on the same GPU.

    python3 benchmarks/torch_gpu.py [--concurrency 16] [--hidden 4096 --layers 6] [--repeat 2] [--kind GPU]

Needs torch with CUDA, a GPU and perf_analyzer (TRITON_REFERENCE_DIR, see pack_perf_analyzer.sh).
The model (512 inputs, `layers` hidden layers of `hidden` units, 10 outputs) is scripted with
torch.jit into a temporary repository: platform pytorch_libtorch, INPUT__0 / OUTPUT__0,
max_batch_size = concurrency, dynamic batching with that preferred size, one KIND_GPU instance
(`--kind CPU`: one KIND_CPU instance and a direct loop on the CPU, to try the script without a GPU).

First one request through tritonclient is compared with the module's own answer on the GPU
(results), then perf_analyzer sends single-row HTTP requests at the given concurrency
(throughput), and the direct loop runs the module on batches of `concurrency` rows (host to
device, forward, device to host), alternating `--repeat` times. Writes
benchmarks/results/torch_gpu.json (torch_cpu.json with `--kind CPU`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from compare import RESULTS, launch, perf_analyzer_missing, stop
from onnx_mlp import INPUTS, OUTPUTS, model_arguments, perf_analyzer
from suite import median_of, ratio

PORTS = (8120, 8121, 8122)


def build_module(hidden: int, layers: int):  # -> torch.jit.ScriptModule
    import torch

    torch.manual_seed(3)
    widths = [INPUTS] + [hidden] * layers + [OUTPUTS]
    parts: list[torch.nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:], strict=False):
        parts += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.jit.script(torch.nn.Sequential(*parts[:-1]).eval())


def write_repository(root: Path, module, batch: int, kind: str) -> None:
    import torch

    folder = root / "mlp_gpu"
    (folder / "1").mkdir(parents=True)
    torch.jit.save(module, str(folder / "1" / "model.pt"))
    (folder / "config.pbtxt").write_text(
        f'name: "mlp_gpu"\nplatform: "pytorch_libtorch"\nmax_batch_size: {batch}\n'
        f'input [{{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {INPUTS} ] }}]\n'
        f'output [{{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {OUTPUTS} ] }}]\n'
        f"dynamic_batching {{ preferred_batch_size: [ {batch} ] max_queue_delay_microseconds: 2000 }}\n"
        + ("instance_group [{ kind: KIND_GPU count: 1 gpus: [ 0 ] }]\n" if kind == "GPU" else
           "instance_group [{ kind: KIND_CPU count: 1 }]\n")
    )


def expected(module, x: np.ndarray, device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module.to(device)(torch.from_numpy(x).to(device)).cpu().numpy()


def served(repository: Path, concurrency: int, check: np.ndarray, answer: np.ndarray) -> dict:
    import tritonclient.http as httpclient

    server, ready_s = launch("tritonlite", repository, PORTS)
    try:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{PORTS[0]}")
        tensor = httpclient.InferInput("INPUT__0", list(check.shape), "FP32")
        tensor.set_data_from_numpy(check)
        got = client.infer("mlp_gpu", [tensor]).as_numpy("OUTPUT__0")
        throughput, text = perf_analyzer(PORTS[0], concurrency, "http", model="mlp_gpu")
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{PORTS[0]}/v2/models/mlp_gpu/stats").read())
    finally:
        stop(server)
    model = stats["model_stats"][0]
    return {
        "throughput": throughput,
        "ready_s": round(ready_s, 2),
        "max_abs_diff": float(np.abs(got - answer).max()),
        "mean_batch": round(model["inference_count"] / max(model["execution_count"], 1), 2),
        "tail": "" if throughput else text[-300:],
    }


def direct(module, batch: int, device: str, seconds: float = 5.0) -> dict:
    import torch

    x = np.random.default_rng(0).standard_normal((batch, INPUTS)).astype(np.float32)
    module = module.to(device)
    with torch.inference_mode():
        for _ in range(20):
            module(torch.from_numpy(x).to(device)).cpu().numpy()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            module(torch.from_numpy(x).to(device)).cpu().numpy()
            runs += 1
    elapsed = time.perf_counter() - start
    return {"throughput": round(batch * runs / elapsed, 1), "batch_ms": round(1000 * elapsed / runs, 4)}


def main() -> int:
    parser = argparse.ArgumentParser()
    model_arguments(parser)
    parser.add_argument("--repeat", type=int, default=2, help="alternating served/direct runs; medians reported")
    parser.add_argument("--kind", default="GPU", choices=["GPU", "CPU"])
    args = parser.parse_args()
    import torch

    device = "cuda:0" if args.kind == "GPU" else "cpu"
    if args.kind == "GPU" and not torch.cuda.is_available():
        print("torch sees no GPU", file=sys.stderr)
        return 2
    if perf_analyzer_missing():
        return 2
    module = build_module(args.hidden, args.layers)
    check = np.random.default_rng(1).standard_normal((4, INPUTS)).astype(np.float32)
    answer = expected(module, check, device)
    name = torch.cuda.get_device_name(0) if args.kind == "GPU" else "cpu"
    result = {"device": name, "kind": args.kind, "torch": torch.__version__,
              "concurrency": args.concurrency, "hidden": args.hidden, "layers": args.layers}  # fmt: skip
    runs: dict[str, list[dict]] = {"tritonlite": [], "direct_torch": []}
    with tempfile.TemporaryDirectory() as folder:
        write_repository(Path(folder), module, args.concurrency, args.kind)
        for _ in range(args.repeat):
            runs["tritonlite"].append(served(Path(folder), args.concurrency, check, answer))
            runs["direct_torch"].append(direct(module, args.concurrency, device))
    result["runs"] = runs
    for name, found in runs.items():
        result[name] = median_of([r["throughput"] for r in found])
    result["ratio"] = ratio(result["tritonlite"], result["direct_torch"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"torch_{args.kind.lower()}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
