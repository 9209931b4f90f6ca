"""Install the tools the benchmarks compare against: NVIDIA's perf_analyzer and, optionally, a real Triton.

    python3 scripts/get_reference.py                      # both, into ~/.cache/tritonlite-reference
    python3 scripts/get_reference.py --perf-analyzer-only
    python3 scripts/get_reference.py --dir /opt/reference  # then: export TRITON_REFERENCE_DIR=/opt/reference

Everything comes from public packages on PyPI (x86_64 Linux, Python 3.11 for the python backend stub):
- perf_analyzer 2.41: the binary inside the tritonclient 2.41.0 manylinux wheel (later tritonclient
  wheels ship a placeholder instead); it links libcudart.so.12 even on a CPU-only machine, which
  nvidia-cuda-runtime-cu12 provides, and libb64 (Debian: libb64-0d).
- Triton 2.51 (CPU, python backend): the tritonserver binaries inside the nvidia-pytriton 0.7.0 wheel;
  its python backend stub embeds the system Python 3 and needs numpy there (Debian: python3-numpy).

The layout written (``DIR/bin/perf_analyzer``, ``DIR/triton/bin/tritonserver``, ``DIR/venv``) is what
``benchmarks/reference.py`` looks for. Running it again does nothing once everything is there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

PERF_ANALYZER_WHEEL = "tritonclient==2.41.0"
TRITON_WHEEL = "nvidia-pytriton==0.7.0"
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12"
DEBIAN_PACKAGES = ("libb64-0d", "python3-numpy")


def default_dir() -> Path:
    return Path(os.environ.get("TRITON_REFERENCE_DIR", Path.home() / ".cache" / "tritonlite-reference"))


def run(*command: str | Path) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], check=True)


def site_packages(venv: Path) -> Path:
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip())


def debian_packages() -> None:
    """libb64 (perf_analyzer) and numpy for the system Python (Triton's python backend stub)."""
    if shutil.which("dpkg") is None:
        print(f"not Debian/Ubuntu: install the equivalents of {', '.join(DEBIAN_PACKAGES)} yourself", file=sys.stderr)
        return
    missing = [name for name in DEBIAN_PACKAGES if subprocess.run(["dpkg", "-s", name], capture_output=True).returncode]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"run as root, or first: sudo apt-get install {' '.join(missing)}")
    run("apt-get", "update", "-qq")
    run("apt-get", "install", "-y", "-qq", *missing)


def perf_analyzer(target: Path, venv: Path) -> None:
    wheels = target / "wheels"
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux1_x86_64", "--python-version", "3.11", "-d", wheels, PERF_ANALYZER_WHEEL)  # fmt: skip
    wheel = next(wheels.glob("tritonclient-2.41.0-*manylinux1_x86_64.whl"))
    binary = target / "bin" / "perf_analyzer.real"
    binary.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        binary.write_bytes(archive.read("tritonclient-2.41.0.data/data/bin/perf_analyzer"))
    binary.chmod(0o755)
    cuda = site_packages(venv) / "nvidia" / "cuda_runtime" / "lib"
    wrapper = target / "bin" / "perf_analyzer"
    wrapper.write_text(
        f'#!/usr/bin/env bash\nexport LD_LIBRARY_PATH="{cuda}:${{LD_LIBRARY_PATH:-}}"\nexec "{binary}" "$@"\n'
    )
    wrapper.chmod(0o755)


def triton(target: Path, venv: Path) -> None:
    bundled = site_packages(venv) / "pytriton" / "tritonserver"
    destination = target / "triton"
    shutil.rmtree(destination, ignore_errors=True)
    for part in ("bin", "backends", "caches"):
        shutil.copytree(bundled / part, destination / part)
    version = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    stub = bundled / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise SystemExit(f"the Triton wheel has no python backend stub for the system Python {version}")
    shutil.copy2(stub, destination / "backends" / "python" / stub.name)
    for executable in (destination / "bin" / "tritonserver", destination / "backends" / "python" / stub.name):
        executable.chmod(0o755)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=default_dir(), help="where to install (TRITON_REFERENCE_DIR)")
    parser.add_argument("--perf-analyzer-only", action="store_true", help="skip the Triton server (about 300 MB)")
    args = parser.parse_args()
    if sysconfig.get_platform() != "linux-x86_64":
        raise SystemExit("these binaries exist for x86_64 Linux only")
    target = args.dir.expanduser().resolve()
    want_triton = not args.perf_analyzer_only
    have_pa = (target / "bin" / "perf_analyzer").exists()
    have_triton = (target / "triton" / "bin" / "tritonserver").exists()
    if have_pa and (have_triton or not want_triton):
        print(target)
        return 0
    debian_packages()
    venv = target / "venv"
    if not (venv / "bin" / "python").exists():
        run(sys.executable, "-m", "venv", venv)
    packages = [CUDA_RUNTIME, *([TRITON_WHEEL] if want_triton else [])]
    run(venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", *packages)
    if not have_pa:
        perf_analyzer(target, venv)
    if want_triton and not have_triton:
        triton(target, venv)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
