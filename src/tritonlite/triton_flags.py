"""Triton 2.51 flags whose job has no counterpart in tritonlite: accepted, named once in the log.

A ``tritonserver`` command line from a Helm chart or a Dockerfile must start tritonlite unchanged.
Flags that size memory pools, thread pools or point at backend folders have nothing to act on
here: they are accepted, and each one given is logged once with what tritonlite does instead.
A value whose silent acceptance would change what clients get (an endpoint tritonlite does not
serve, a naming scheme it does not have) is refused, naming the flag and why.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class InertFlag:
    """A Triton flag tritonlite accepts without an effect: what it does instead, and the values it refuses."""

    name: str
    instead: str
    # the reason to refuse a value, or None to accept it
    refuse: Callable[[str], str | None] = lambda value: None

    @property
    def dest(self) -> str:
        return "inert_" + self.name.lstrip("-").replace("-", "_")


def _refuse_true(reason: str) -> Callable[[str], str | None]:
    return lambda value: reason if _true(value) else None


_NO_POOL = "tensors live in ordinary host memory and each framework allocates its own GPU memory: no pool is reserved"
_NO_THREADS = "HTTP and gRPC are served by the event loop; no thread pool is sized"
_SAGEMAKER_ONLY = "used only with --allow-sagemaker, which tritonlite does not serve"
_VERTEX_ONLY = "used only with --allow-vertex-ai, which tritonlite does not serve"

INERT_FLAGS: tuple[InertFlag, ...] = (
    InertFlag("--pinned-memory-pool-byte-size", _NO_POOL),
    InertFlag("--cuda-memory-pool-byte-size", _NO_POOL),
    InertFlag("--cuda-virtual-address-size", _NO_POOL),
    InertFlag("--backend-directory", "the backends are part of tritonlite; no backend libraries are loaded"),
    InertFlag("--repoagent-directory", "repository agents are part of tritonlite (checksum)"),
    InertFlag("--cache-directory", "the response cache is part of tritonlite (--cache-config local,size=N)"),
    InertFlag("--http-thread-count", _NO_THREADS),
    InertFlag("--buffer-manager-thread-count", _NO_THREADS),
    InertFlag("--grpc-infer-allocation-pool-size", "gRPC responses are built for each call; nothing is pooled"),
    InertFlag("--host-policy", "no NUMA or CPU binding is applied; instances run where the OS schedules them"),
    InertFlag("--min-supported-compute-capability", "GPUs are used as the frameworks find them"),
    InertFlag("--model-load-gpu-limit", "GPU memory is not checked before a model loads"),
    InertFlag(
        "--model-load-retry-count", "a model that fails to load is not retried; it is UNAVAILABLE with its reason"
    ),
    InertFlag("--enable-peer-access", "peer access between GPUs is left as the frameworks set it"),
    InertFlag("--reuse-http-port", "the HTTP port is bound without SO_REUSEPORT"),
    InertFlag(
        "--allow-sagemaker", "the SageMaker endpoint is off", _refuse_true("tritonlite does not serve SageMaker")
    ),
    InertFlag("--sagemaker-port", _SAGEMAKER_ONLY),
    InertFlag("--sagemaker-safe-port-range", _SAGEMAKER_ONLY),
    InertFlag("--sagemaker-thread-count", _SAGEMAKER_ONLY),
    InertFlag(
        "--allow-vertex-ai", "the Vertex AI endpoint is off", _refuse_true("tritonlite does not serve Vertex AI")
    ),
    InertFlag("--vertex-ai-port", _VERTEX_ONLY),
    InertFlag("--vertex-ai-thread-count", _VERTEX_ONLY),
    InertFlag("--vertex-ai-default-model", _VERTEX_ONLY),
    InertFlag(
        "--model-namespacing",
        "models are not namespaced",
        _refuse_true("tritonlite has no model namespacing: models of one name in two repositories stay ambiguous"),
    ),
)

# Triton flags refused whatever their value: accepting them silently would change what clients get
REFUSED_FLAGS: dict[str, str] = {
    "--http-header-forward-pattern": "tritonlite does not forward HTTP headers to models as request parameters",
    "--grpc-header-forward-pattern": "tritonlite does not forward gRPC metadata to models as request parameters",
}


def add_inert_flags(parser: argparse.ArgumentParser) -> None:
    """Add the inert flags, in a help group of their own."""
    group = parser.add_argument_group(
        "Triton flags without effect in tritonlite",
        "accepted so that tritonserver command lines run unchanged; each one given is named in the log",
    )
    for flag in INERT_FLAGS:
        group.add_argument(flag.name, dest=flag.dest, action="append", default=[], metavar="VALUE", help=flag.instead)


def inert_flag_notes(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The log line for each inert flag given, or the refusal of a value that cannot be accepted."""
    notes = []
    for flag in INERT_FLAGS:
        for value in getattr(args, flag.dest, []):
            reason = flag.refuse(value)
            if reason is not None:
                return [], f"tritonlite-server: {flag.name}={value} is refused: {reason}"
            notes.append(f"{flag.name}={value} has no effect in tritonlite: {flag.instead}")
    return notes, None


def refused_flag(argv: list[str]) -> str | None:
    """The refusal of the first flag in ``argv`` that tritonlite refuses, or None."""
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in REFUSED_FLAGS:
            return f"tritonlite-server: {name} is refused: {REFUSED_FLAGS[name]}; remove it to start the server"
    return None
