"""Where a KIND_GPU PyTorch execute spends its time beyond the module itself (needs a GPU).

    python3 benchmarks/torch_overhead.py

A TorchScript MLP (256 -> 1024 -> 10), batch 32: the bare module in a loop (host to device,
forward, device to host) with and without each context the backend enters, then the backend's
infer() and its whole execute() (gather, infer, scatter), and a cProfile of execute(). Microseconds
per batch. Outputs of its runs on an H100: measured/device/torch_overhead_*.txt.
"""

import contextlib
import cProfile
import io
import pstats
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format

from tritonlite.backends import create_instance
from tritonlite.backends.base import InstanceSpec
from tritonlite.core.types import InferRequest, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config

CONFIG = (
    'platform: "pytorch_libtorch" max_batch_size: 64 '
    'input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 256 ] }] '
    'output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] }] instance_group [{ kind: KIND_GPU }]'
)
CALLS = 3000


def per_call(name: str, fn) -> None:
    for _ in range(200):
        fn()
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    print(f"{name:55s} {(time.perf_counter() - start) / CALLS * 1e6:7.1f} us", flush=True)


def main() -> int:
    if not torch.cuda.is_available():
        print("torch sees no GPU", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    mlp = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)).eval()
    root = Path(tempfile.mkdtemp()) / "mlp"
    (root / "1").mkdir(parents=True)
    torch.jit.save(torch.jit.script(mlp), str(root / "1" / "model.pt"))
    config = mc.ModelConfig()
    text_format.Parse(CONFIG, config)
    complete_config(config, "mlp")
    instance = create_instance("pytorch", InstanceSpec("mlp", 1, root, config, {}, "mlp_0_0", "GPU", 0))
    x = np.random.default_rng(0).standard_normal((32, 256)).astype(np.float32)
    request = InferRequest("mlp", "", "r", [InferTensor("INPUT__0", "FP32", [32, 256], x)])
    module = torch.jit.load(str(root / "1" / "model.pt"), map_location="cuda:0")
    device = torch.device("cuda:0")

    def direct(to_device, *contexts):
        def run():
            with contextlib.ExitStack() as stack:
                stack.enter_context(torch.inference_mode())
                for make in contexts:
                    stack.enter_context(make())
                module(to_device(torch.from_numpy(x))).cpu().numpy()

        return run

    def cuda(tensor):
        return tensor.cuda()

    def non_blocking(tensor):
        return tensor.to(device, non_blocking=True)

    def device_context():
        return torch.cuda.device(device)

    def optimized():
        return torch.jit.optimized_execution(True)

    for _ in range(2):
        per_call("direct .cuda()", direct(cuda))
        per_call("direct .to(non_blocking=True)", direct(non_blocking))
        per_call("direct + torch.cuda.device ctx", direct(cuda, device_context))
        per_call("direct + optimized_execution ctx", direct(cuda, optimized))
        per_call("direct + both ctx + non_blocking", direct(non_blocking, device_context, optimized))
        per_call("backend infer()", lambda: instance.infer({"INPUT__0": x}, ["OUTPUT__0"]))
        per_call("backend execute()", lambda: instance.execute([request]))
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(2000):
        instance.execute([request])
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(18)
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
