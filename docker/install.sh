#!/usr/bin/env bash
# Install tritonlite, with extras, into a virtualenv: the one install step of docker/Dockerfile and
# docker/Dockerfile.cpu, and what tests/deployment runs to check those images' steps without Docker.
#
#   docker/install.sh [options] VENV SOURCE
#
#   VENV     the virtualenv to install into; created with --python when it does not exist
#   SOURCE   a source tree (pyproject.toml + src/), a built wheel, or an sdist
#
# Options:
#   --python PY             interpreter that creates VENV (default: python3)
#   --extras A,B            extras that must exist in the package (fails otherwise), e.g. onnx,s3
#   --optional-extras A,B   extras installed only where the package defines them (a warning otherwise)
#   --wheel-dir DIR         also keep the built wheel in DIR (default: it is removed afterwards)
#   --no-cache              no pip cache (docker images); otherwise pip's own cache is used
#   --pip-arg ARG           one more argument for `pip install` (repeatable), e.g. --pip-arg=--no-index
#
# Steps: create VENV, build the wheel from SOURCE (`pip wheel --no-deps`), check the requested
# extras against the wheel's metadata, `pip install "tritonlite[extras] @ file://WHEEL"`,
# `pip check`, and `tritonlite-server --version`. The last line printed is the venv's size.
set -euo pipefail

python_bin=python3
extras=""
optional_extras=""
wheel_dir=""
pip_common=(--disable-pip-version-check --no-input)
pip_install_args=()

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --python) python_bin="$2"; shift 2 ;;
    --python=*) python_bin="${1#*=}"; shift ;;
    --extras) extras="$2"; shift 2 ;;
    --extras=*) extras="${1#*=}"; shift ;;
    --optional-extras) optional_extras="$2"; shift 2 ;;
    --optional-extras=*) optional_extras="${1#*=}"; shift ;;
    --wheel-dir) wheel_dir="$2"; shift 2 ;;
    --wheel-dir=*) wheel_dir="${1#*=}"; shift ;;
    --no-cache) pip_common+=(--no-cache-dir); shift ;;
    --pip-arg) pip_install_args+=("$2"); shift 2 ;;
    --pip-arg=*) pip_install_args+=("${1#*=}"); shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) echo "install.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || usage
venv="$1"
source_path="$2"

log() { echo "install.sh: $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv with $python_bin"
  "$python_bin" -m venv "$venv"
fi
venv="$(cd "$venv" && pwd)"
pip=("$venv/bin/python" -m pip "${pip_common[@]}")

# The wheel is built in a fresh folder (so exactly one wheel is there), then copied to --wheel-dir.
build_dir="$(mktemp -d)"
trap 'rm -rf "$build_dir"' EXIT

case "$source_path" in
  *.whl)
    wheel="$(cd "$(dirname "$source_path")" && pwd)/$(basename "$source_path")"
    ;;
  *)
    log "building the wheel from $source_path"
    "${pip[@]}" wheel --quiet --no-deps --wheel-dir "$build_dir" "$source_path"
    wheels=("$build_dir"/tritonlite-*.whl)
    wheel="${wheels[0]}"
    if [ -n "$wheel_dir" ] && [ -f "$wheel" ]; then
      mkdir -p "$wheel_dir"
      cp "$wheel" "$wheel_dir/"
      wheel="$(cd "$wheel_dir" && pwd)/$(basename "$wheel")"
    fi
    ;;
esac
[ -f "$wheel" ] || { log "no tritonlite wheel found (from $source_path)"; exit 1; }
log "wheel: $(basename "$wheel")"

# Resolve the extras against the wheel's Provides-Extra: a missing required extra fails here,
# rather than pip's warning and an image without the backend it promises.
selected="$("$venv/bin/python" - "$wheel" "$extras" "$optional_extras" <<'PY'
import sys
import zipfile
from email.parser import Parser

wheel, required, optional = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(archive.read(name).decode())
provided = {extra.strip() for extra in metadata.get_all("Provides-Extra") or []}
split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
missing = [extra for extra in split(required) if extra not in provided]
if missing:
    sys.exit(f"install.sh: {wheel} has no extra {', '.join(missing)} (it has: {', '.join(sorted(provided)) or 'none'})")
chosen = split(required)
for extra in split(optional):
    if extra in provided:
        chosen.append(extra)
    else:
        print(f"install.sh: optional extra '{extra}' is not defined by this version; skipped", file=sys.stderr)
print(",".join(dict.fromkeys(chosen)))
PY
)"

requirement="tritonlite @ file://$wheel"
if [ -n "$selected" ]; then
  requirement="tritonlite[$selected] @ file://$wheel"
fi
log "installing $requirement"
"${pip[@]}" install --quiet "${pip_install_args[@]}" "$requirement"
"${pip[@]}" check
"$venv/bin/tritonlite-server" --version
du -sh "$venv" | cut -f1 | sed 's/^/install.sh: installed size /' >&2
