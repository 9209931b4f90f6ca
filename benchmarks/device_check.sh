#!/usr/bin/env bash
# GPU check of the framework backends, for a machine with an NVIDIA GPU and torch (CUDA build),
# onnxruntime (CPU is enough), pytest and optionally cupy / cuda-python / tensorrt installed.
# Run from the repository root:  OUT=/some/dir bash benchmarks/device_check.sh
# Writes under $OUT: env.txt, nvidia-smi.txt, one log (and junit xml) per test group,
# torch_gpu_throughput.json and summary.txt. Exits non-zero if a test group failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/device_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

# tritonlite itself, without touching the machine's framework packages
if ! "$PY" -c "import tritonlite" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-deps -e . >"$OUT/pip.txt" 2>&1 || echo "pip install -e . failed (see pip.txt)"
fi

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" >"$OUT/nvidia-smi.txt"
"$PY" - >"$OUT/env.txt" 2>&1 <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "onnxruntime", "onnx", "tensorrt", "cupy", "cuda.bindings.runtime", "tritonclient", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "importable"))
    except Exception as exc:  # noqa: BLE001
        print(name, "MISSING:", exc)
try:
    import torch
    print("torch.cuda.is_available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
    if torch.cuda.is_available():
        print("device 0:", torch.cuda.get_device_name(0))
except Exception as exc:  # noqa: BLE001
    print("torch check failed:", exc)
try:
    import onnxruntime
    print("onnxruntime providers", onnxruntime.get_available_providers())
except Exception as exc:  # noqa: BLE001
    print("onnxruntime check failed:", exc)
EOF

status=0
summary="$OUT/summary.txt"
: >"$summary"
run_group() {  # name, then pytest arguments
  local name="$1"; shift
  "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/$name.xml" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc; $(tail -n 1 "$OUT/$name.log")" >>"$summary"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && status=1
}

# PyTorch with KIND_GPU instances (cuda:0): the backend tests, and the server test if tritonclient is there
pytorch_tests=(tests/backends/pytorch/test_pytorch_backend.py tests/backends/pytorch/test_pytorch_naming.py)
"$PY" -c "import tritonclient.grpc, requests" 2>/dev/null && pytorch_tests+=(tests/backends/pytorch/test_pytorch_end_to_end.py)
TRITONLITE_TEST_DEVICE=GPU run_group pytorch_gpu "${pytorch_tests[@]}"
# TensorRT: engine logic with fakes; the real-engine test runs only where tensorrt is installed
run_group tensorrt tests/backends/tensorrt
# ONNX Runtime (CPU build is enough; with onnxruntime-gpu the CUDA-provider refusal test skips)
run_group onnxruntime tests/backends/onnxruntime/test_onnxruntime_backend.py tests/backends/onnxruntime/test_onnxruntime_options.py

# Throughput of a KIND_GPU PyTorch instance vs calling the module directly on the same GPU
"$PY" - >"$OUT/torch_gpu_throughput.json" 2>"$OUT/torch_gpu_throughput.err" <<'EOF'
import json, tempfile, time, warnings
from pathlib import Path
import numpy as np
import torch
from google.protobuf import text_format
from tritonlite.backends import create_instance
from tritonlite.backends.base import InstanceSpec
from tritonlite.core.types import InferRequest, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config

warnings.simplefilter("ignore", DeprecationWarning)
assert torch.cuda.is_available(), "no GPU for torch"
mlp = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)).eval()
root = Path(tempfile.mkdtemp()) / "mlp"
(root / "1").mkdir(parents=True)
torch.jit.save(torch.jit.script(mlp), str(root / "1" / "model.pt"))
config = mc.ModelConfig()
text_format.Parse('platform: "pytorch_libtorch" max_batch_size: 64 '
                  'input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 256 ] }] '
                  'output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] }] '
                  'instance_group [{ kind: KIND_GPU }]', config)
complete_config(config, "mlp")
instance = create_instance("pytorch", InstanceSpec("mlp", 1, root, config, {}, "mlp_0_0", "GPU", 0))
batch, iterations = 32, 300
x = np.random.default_rng(0).standard_normal((batch, 256)).astype(np.float32)
request = InferRequest("mlp", "", "r", [InferTensor("INPUT__0", "FP32", [batch, 256], x)])
module = torch.jit.load(str(root / "1" / "model.pt"), map_location="cuda:0")
with torch.inference_mode():
    expected = module(torch.from_numpy(x).cuda()).cpu().numpy()
got = instance.execute([request])[0].outputs[0].data
for _ in range(20):
    instance.execute([request])
start = time.perf_counter()
for _ in range(iterations):
    instance.execute([request])
backend_s = time.perf_counter() - start
with torch.inference_mode():
    start = time.perf_counter()
    for _ in range(iterations):
        module(torch.from_numpy(x).cuda()).cpu().numpy()
    direct_s = time.perf_counter() - start
print(json.dumps({
    "device": torch.cuda.get_device_name(0), "batch": batch, "iterations": iterations,
    "max_abs_diff": float(np.abs(got - expected).max()),
    "backend_inferences_per_s": batch * iterations / backend_s,
    "direct_inferences_per_s": batch * iterations / direct_s,
    "ratio": direct_s / backend_s,
}, indent=2))
EOF
rc=$?
[ "$rc" -ne 0 ] && status=1
echo "torch_gpu_throughput: exit $rc; $(tr -d '\n' <"$OUT/torch_gpu_throughput.json" | cut -c1-300)" >>"$summary"
cat "$summary"
exit "$status"
