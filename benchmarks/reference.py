"""Where the benchmarks find perf_analyzer and the real Triton, and what they say when one is missing.

Looked up, in order:
- perf_analyzer: ``$TRITONLITE_PERF_ANALYZER``, then ``$TRITON_REFERENCE_DIR/bin/perf_analyzer``.
- Triton: ``$TRITONLITE_TRITONSERVER`` (a ``tritonserver`` binary, run with the flags it is given), then
  ``$TRITON_REFERENCE_DIR/triton/bin/tritonserver`` (run with the backends beside it).

``TRITON_REFERENCE_DIR`` defaults to ``~/.cache/tritonlite-reference``; ``scripts/get_reference.py``
installs both there. ``pip install tritonclient[all]`` does not give a working perf_analyzer (newer
wheels ship a placeholder), hence the script.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

GET_REFERENCE = "python3 scripts/get_reference.py"


def reference_dir() -> Path:
    return Path(os.environ.get("TRITON_REFERENCE_DIR", Path.home() / ".cache" / "tritonlite-reference"))


def perf_analyzer_path(given: str | Path | None = None) -> Path:
    """Where perf_analyzer should be (it may not exist: see ``missing``)."""
    if given:
        return Path(given)
    if os.environ.get("TRITONLITE_PERF_ANALYZER"):
        return Path(os.environ["TRITONLITE_PERF_ANALYZER"])
    return reference_dir() / "bin" / "perf_analyzer"


@dataclass(frozen=True)
class TritonCommand:
    """How to start the real Triton: the command before the repository and port flags, and its environment."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, repository: Path, http: int, grpc: int, metrics: int, *flags: str) -> list[str]:
        return [*self.command, f"--model-repository={repository}", f"--http-port={http}", f"--grpc-port={grpc}",
                f"--metrics-port={metrics}", "--allow-cpu-metrics=true", *flags]  # fmt: skip


def triton_command() -> TritonCommand | None:
    """How to start the real Triton here, or None when it is not installed."""
    explicit = os.environ.get("TRITONLITE_TRITONSERVER")
    if explicit:
        return TritonCommand([explicit]) if Path(explicit).exists() else None
    root = reference_dir()
    binary = root / "triton" / "bin" / "tritonserver"
    if not binary.exists():
        return None
    libraries = [str(path) for path in root.glob("venv/lib/python3*/site-packages/nvidia_pytriton.libs")]
    libraries += [str(path) for path in root.glob("venv/lib/python3*/site-packages/nvidia/cuda_runtime/lib")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([*libraries, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    backends = root / "triton" / "backends"
    caches = root / "triton" / "caches"
    return TritonCommand([str(binary), f"--backend-directory={backends}", f"--cache-directory={caches}"], env)


def missing(need_triton: bool = True, perf_analyzer: str | Path | None = None) -> list[str]:
    """What this machine lacks for a benchmark, each with how to get it (empty: nothing)."""
    problems = []
    found = perf_analyzer_path(perf_analyzer)
    if not found.exists():
        problems.append(
            f"perf_analyzer not found at {found}: run `{GET_REFERENCE} --perf-analyzer-only`, or point "
            "TRITONLITE_PERF_ANALYZER at a perf_analyzer binary (NVIDIA's SDK container has one)"
        )
    if need_triton and triton_command() is None:
        where = os.environ.get("TRITONLITE_TRITONSERVER") or reference_dir() / "triton" / "bin" / "tritonserver"
        problems.append(
            f"Triton not found at {where}: run `{GET_REFERENCE}`, or point TRITONLITE_TRITONSERVER at a "
            "tritonserver binary"
        )
    return problems


def say_missing(need_triton: bool = True, perf_analyzer: str | Path | None = None) -> bool:
    """Print what is missing to stderr; True when something is."""
    problems = missing(need_triton, perf_analyzer)
    for problem in problems:
        print(problem, file=sys.stderr)
    return bool(problems)
