#!/usr/bin/env bash
# One device check on an NVIDIA GPU machine without network (the `device` tool of this workplace).
# Carry .whl (tritonlite's dependencies as wheels) and .pa (perf_analyzer, from
# benchmarks/pack_perf_analyzer.sh). Installs the wheels into /tmp/site, then runs, each bounded:
#   1. the GPU-only tests (CUDA shared memory, NVML metrics);
#   2. benchmarks/device_check.sh: PyTorch KIND_GPU tests, TensorRT logic, ONNX Runtime tests
#      (a CPU build of onnxruntime: KIND_GPU must be refused with the reason), PyTorch throughput;
#   3. benchmarks/torch_gpu.py: the TorchScript MLP served from a KIND_GPU instance, perf_analyzer
#      at concurrency 16 vs a direct loop on the same GPU, with the answer checked;
#   4. benchmarks/onnx_mlp.py on this machine's CPU (the 0.9 target's benchmark, 16 cores here);
#   5. the whole suite, with what time is left.
# Results under $OUT (at most 8 files come back): summary.txt, gpu_tests.log, torch_check.tgz,
# torch_gpu.json, onnx_mlp.json, suite_tail.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/device_out}"
BUDGET="${BUDGET:-500}"  # seconds for the whole script; the suite gets what is left
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
exec > >(tee "$OUT/summary.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >/tmp/pip.txt 2>&1 || { echo "wheel install failed"; tail -20 /tmp/pip.txt; }
export PYTHONPATH="/tmp/site:$PWD/src:$PWD/tests" PYTHONUNBUFFERED=1 PYTHON=python3
[ -x .pa/bin/perf_analyzer ] && export TRITON_REFERENCE_DIR="$PWD/.pa"
python3 -c "import tritonlite, fastapi, uvicorn, tritonclient.grpc, grpc, google.protobuf as p, onnxruntime as o; print('imports ok', p.__version__, grpc.__version__, 'onnxruntime', o.__version__, o.get_available_providers())"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc
echo "== install: $(( $(date +%s) - start )) s"

echo "== 1. GPU-only tests"
timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/sharedmem/test_cuda_shared_memory.py \
  tests/metrics/test_gpu_metrics.py >"$OUT/gpu_tests.log" 2>&1
tail -6 "$OUT/gpu_tests.log"

echo "== 2. device_check.sh (elapsed $(( $(date +%s) - start )) s)"
OUT=/tmp/torch_check timeout 200 bash benchmarks/device_check.sh >/dev/null 2>&1
echo "device_check exit $?"
cat /tmp/torch_check/summary.txt /tmp/torch_check/env.txt 2>/dev/null
grep -h -E "FAILED|Error" /tmp/torch_check/*.log 2>/dev/null | head -20
tar -czf "$OUT/torch_check.tgz" -C /tmp torch_check 2>/dev/null

rm -f benchmarks/results/torch_gpu.json benchmarks/results/onnx_mlp.json  # only this run's come back
echo "== 3. torch_gpu.py (elapsed $(( $(date +%s) - start )) s)"
timeout 150 python3 benchmarks/torch_gpu.py --repeat 2 2>&1 | tail -40
cp benchmarks/results/torch_gpu.json "$OUT/" 2>/dev/null

echo "== 4. onnx_mlp.py on this CPU (elapsed $(( $(date +%s) - start )) s)"
timeout 150 python3 benchmarks/onnx_mlp.py --repeat 2 2>&1 | grep -v '"tail"' | tail -40
cp benchmarks/results/onnx_mlp.json "$OUT/" 2>/dev/null

echo "== 5. whole suite, $(left) s left"
if [ "$(left)" -gt 60 ]; then
  timeout "$(left)" python3 -m pytest -q -p no:cacheprovider --timeout 60 tests --ignore=tests/deployment \
    --deselect tests/scheduling/test_triton_scheduling_facts.py >"$OUT/suite_tail.log" 2>&1
  echo "suite exit $?"; tail -8 "$OUT/suite_tail.log"
fi
echo "== total: $(( $(date +%s) - start )) s"
