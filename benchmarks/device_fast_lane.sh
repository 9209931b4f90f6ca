#!/usr/bin/env bash
# The HTTP fast lane on the lent GPU machine (the `device` tool): its tests, then
# benchmarks/torch_gpu.py (TorchScript MLP on a KIND_GPU instance, perf_analyzer c16) and
# benchmarks/onnx_mlp.py (on that machine's CPU), each with the lane on and off
# (TRITONLITE_HTTP_FAST=0), in the same call. Carry .whl and .pa as for device_run.sh.
# Results under $OUT: summary.txt and the four JSON files.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/device_out}"
mkdir -p "$OUT"
start=$(date +%s)
exec > >(tee "$OUT/summary.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >/tmp/pip.txt 2>&1 || { echo "wheel install failed"; tail -20 /tmp/pip.txt; }
export PYTHONPATH="/tmp/site:$PWD/src:$PWD/tests" PYTHONUNBUFFERED=1 PYTHON=python3
[ -x .pa/bin/perf_analyzer ] && export TRITON_REFERENCE_DIR="$PWD/.pa"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nproc
echo "== fast lane and HTTP frontend tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/frontends/http 2>&1 | tail -3
for lane in 1 0; do
  echo "== torch_gpu.py, TRITONLITE_HTTP_FAST=$lane (elapsed $(( $(date +%s) - start )) s)"
  rm -f benchmarks/results/torch_gpu.json
  TRITONLITE_HTTP_FAST=$lane timeout 110 python3 benchmarks/torch_gpu.py --repeat 2 2>&1 | grep -v '"tail"' | tail -12
  cp benchmarks/results/torch_gpu.json "$OUT/torch_gpu_lane$lane.json" 2>/dev/null
done
for lane in 1 0; do
  echo "== onnx_mlp.py, TRITONLITE_HTTP_FAST=$lane (elapsed $(( $(date +%s) - start )) s)"
  rm -f benchmarks/results/onnx_mlp.json
  TRITONLITE_HTTP_FAST=$lane timeout 100 python3 benchmarks/onnx_mlp.py --repeat 2 2>&1 | tail -4
  cp benchmarks/results/onnx_mlp.json "$OUT/onnx_mlp_lane$lane.json" 2>/dev/null
done
echo "== total: $(( $(date +%s) - start )) s"
