#!/usr/bin/env bash
# One device check on an NVIDIA GPU machine without network (the `device` tool of this workplace):
# installs the carried wheels (.whl/) into /tmp/site, then runs the GPU-relevant tests
# (PyTorch KIND_GPU, CUDA shared memory, NVML metrics), the PyTorch GPU throughput check and the
# whole suite. Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/device_out}"
mkdir -p "$OUT"
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >"$OUT/pip.txt" 2>&1 || { echo "wheel install failed"; tail -20 "$OUT/pip.txt"; }
export PYTHONPATH="/tmp/site:$PWD/src:$PWD/tests" PYTHONUNBUFFERED=1 PYTHON=python3
python3 -c "import tritonlite, fastapi, uvicorn, tritonclient.grpc, grpc, google.protobuf as p; print('imports ok', p.__version__, grpc.__version__)" 2>&1 | tee "$OUT/imports.txt"
echo "install: $(( $(date +%s) - start )) s"
# GPU-specific tests
timeout 150 python3 -m pytest -q -rs -p no:cacheprovider tests/sharedmem/test_cuda_shared_memory.py \
  tests/metrics/test_gpu_metrics.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
# PyTorch on the GPU (benchmarks/device_check.sh): tests + throughput; its many files stay in /tmp
OUT=/tmp/torch_check timeout 200 bash benchmarks/device_check.sh >/dev/null 2>&1
cp /tmp/torch_check/summary.txt "$OUT/torch_summary.txt" 2>/dev/null
cp /tmp/torch_check/torch_gpu_throughput.json "$OUT/torch_throughput.json" 2>/dev/null
cat "$OUT/torch_summary.txt" "$OUT/torch_throughput.json" 2>/dev/null
grep -h -E "FAILED|Error" /tmp/torch_check/*.log 2>/dev/null | head -20
echo "elapsed: $(( $(date +%s) - start )) s"
# The whole suite on this machine, bounded
timeout 200 python3 -m pytest -q -x -p no:cacheprovider --timeout 60 tests --ignore=tests/deployment \
  --deselect tests/scheduling/test_triton_scheduling_facts.py 2>&1 | tail -8 | tee "$OUT/suite_tail.log"
echo "total: $(( $(date +%s) - start )) s"
