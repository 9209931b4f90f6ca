"""Repository agents: checks and changes applied to a model's files before it loads.

``model_repository_agents { agents [{ name: "checksum", parameters { key: "MD5:1/model.py"
value: "<hex digest>" } }] }`` refuses to load a model whose file does not match. An agent is a
function ``(config, model_path, parameters) -> None`` that raises TritonError to refuse; new
agents register themselves in ``AGENTS``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

from tritonlite.core.errors import invalid_arg
from tritonlite.repository.paths import resolve_inside

Agent = Callable[[object, Path, dict[str, str]], None]

_ALGORITHMS = {"MD5": hashlib.md5, "SHA1": hashlib.sha1, "SHA256": hashlib.sha256}


def checksum_agent(config, model_path: Path, parameters: dict[str, str]) -> None:
    """Each parameter ``<ALGO>:<relative path>`` = hex digest must match the file."""
    for key, expected in parameters.items():
        algorithm, sep, relative = key.partition(":")
        digest = _ALGORITHMS.get(algorithm.upper())
        if not sep or digest is None:
            raise invalid_arg(
                f"checksum agent: parameter '{key}' must be '<MD5|SHA1|SHA256>:<path in the model folder>'"
            )
        path = resolve_inside(model_path, relative)
        if not path.is_file():
            raise invalid_arg(f"checksum agent: file '{relative}' of model '{model_path.name}' does not exist")
        actual = digest(path.read_bytes()).hexdigest()
        if actual.lower() != expected.strip().lower():
            raise invalid_arg(
                f"checksum agent: {algorithm.upper()} of '{relative}' is {actual}, expected {expected.strip()}; "
                f"refusing to load model '{model_path.name}'"
            )


AGENTS: dict[str, Agent] = {"checksum": checksum_agent}


async def run_agents(config, model_path: Path) -> None:
    """Run the model's repository agents (in a thread: they read files)."""
    if not config.HasField("model_repository_agents"):
        return
    for agent in config.model_repository_agents.agents:
        function = AGENTS.get(agent.name)
        if function is None:
            raise invalid_arg(
                f"unknown repository agent '{agent.name}' for model '{model_path.name}' "
                f"(available: {', '.join(sorted(AGENTS))})"
            )
        await asyncio.to_thread(function, config, model_path, dict(agent.parameters))
