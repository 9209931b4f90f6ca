#!/usr/bin/env bash
# Packs the reference perf_analyzer (installed by scripts/get_reference.py) into .pa/ so that it
# can travel to an offline machine (the `device` tool: carry ".pa"). The binary needs libcudart.so.12
# and libb64 beside it; libssl/libcrypto/libz travel too and are used only where the machine lacks them.
# There: TRITON_REFERENCE_DIR=$PWD/.pa python3 benchmarks/onnx_mlp.py ...
set -euo pipefail
cd "$(dirname "$0")/.."
reference="${TRITON_REFERENCE_DIR:-$HOME/.cache/tritonlite-reference}"
rm -rf .pa && mkdir -p .pa/bin .pa/lib .pa/fallback
cp "$reference/bin/perf_analyzer.real" .pa/bin/
command -v strip >/dev/null && strip .pa/bin/perf_analyzer.real
cp "$(find "$reference/venv" -name libcudart.so.12 | head -1)" .pa/lib/
for name in libb64.so.0d; do cp -L "/lib/x86_64-linux-gnu/$name" .pa/lib/; done
for name in libssl.so.3 libcrypto.so.3 libz.so.1; do cp -L "/lib/x86_64-linux-gnu/$name" .pa/fallback/; done
cat > .pa/bin/perf_analyzer <<'WRAP'
#!/usr/bin/env bash
here="$(cd "$(dirname "$0")/.." && pwd)"
export LD_LIBRARY_PATH="$here/lib:${LD_LIBRARY_PATH:-}"
if LD_TRACE_LOADED_OBJECTS=1 "$here/bin/perf_analyzer.real" 2>/dev/null | grep -q "not found"; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$here/fallback"
fi
exec "$here/bin/perf_analyzer.real" "$@"
WRAP
chmod +x .pa/bin/perf_analyzer
grep -qx '/.pa/' .git/info/exclude || echo '/.pa/' >> .git/info/exclude
du -sh .pa
