"""The interface every backend implements.

An instance is created (and initialized) on its own thread, then ``execute`` is called on
that same thread with a list of requests; it returns one result per request, in order: an
``InferResponse`` or a ``TritonError`` for that request alone.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonlite.core.errors import TritonError
from tritonlite.core.types import InferRequest, InferResponse


@dataclass
class InstanceSpec:
    """Everything a backend needs to create one instance of one model version."""

    model_name: str
    version: int
    model_path: Path  # the model's folder (holds config.pbtxt)
    config: Any  # ModelConfig protobuf, already completed and validated
    config_json: dict = field(default_factory=dict)
    instance_name: str = ""
    kind: str = "CPU"  # CPU, GPU or MODEL
    device_id: int = 0
    extra: dict = field(default_factory=dict)
    # --backend-config settings for this model's backend (key -> value)
    backend_settings: dict = field(default_factory=dict)

    @property
    def version_path(self) -> Path:
        return self.model_path / str(self.version)


class BackendInstance(ABC):
    """One instance of a loaded model.

    ``timings`` holds the last execute's (input, infer, output) nanoseconds when the backend
    measures them; (0, 0, 0) lets the runner count the whole execute as infer time.
    ``may_run_inline`` is False for an instance whose execute must stay on its own thread (it
    waits on another process, or on a device).
    """

    timings: tuple[int, int, int] = (0, 0, 0)
    may_run_inline: bool = True

    @abstractmethod
    def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        """Run a batch of requests; one result per request, in order."""

    def finalize(self) -> None:  # noqa: B027 - optional hook
        """Release what the instance holds."""

    def is_ready(self) -> bool:
        """Whether the model says it can serve (asked on the event loop by readiness probes: cheap)."""
        return True

    def kill(self) -> bool:
        """End the instance now, from any thread, without its finalize (it hung, or the server
        gives up on it). True when that frees the instance's thread (a process instance kills its
        process, and an execute waiting on it returns); False when it cannot: the instance runs on
        its thread, which the caller must then abandon."""
        return False

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[str], None]) -> None:  # noqa: B027
        """Call ``on_exit(reason)`` on ``loop`` if the instance dies on its own (a process instance
        whose process exits). Called on the loop; the default instance never dies alone."""
