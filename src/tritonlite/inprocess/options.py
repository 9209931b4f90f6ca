"""Server options of the in-process API, named as ``tritonserver.Options`` names them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from tritonlite.engine import EngineOptions
from tritonlite.inprocess.errors import InvalidArgumentError


class ModelControlMode(enum.IntEnum):
    """TRITONSERVER_ModelControlMode."""

    NONE = 0
    POLL = 1
    EXPLICIT = 2


class RateLimitMode(enum.IntEnum):
    """TRITONSERVER_RateLimitMode."""

    OFF = 0
    EXEC_COUNT = 1


@dataclass(slots=True)
class RateLimiterResource:
    """How much of a rate-limiter resource there is (device -1: that count on every device)."""

    name: str
    count: int
    device: int = -1


@dataclass(slots=True)
class Options:
    """What ``tritonserver.Options`` holds, for the options tritonlite implements.

    ``model_repository``: a folder or cloud URL, or a list of them. ``startup_models``: the models
    explicit mode loads at start. ``exit_on_error``: ``start()`` fails when a model fails to load.
    ``exit_timeout``: seconds ``stop()`` waits for requests in flight. ``poll_interval``: seconds
    between repository polls in POLL mode (tritonlite's; Triton's server has it as a CLI flag).
    """

    model_repository: str | Path | list[str | Path] = field(default_factory=list)
    server_id: str = "triton"
    model_control_mode: ModelControlMode = ModelControlMode.NONE
    startup_models: list[str] = field(default_factory=list)
    strict_model_config: bool = False
    rate_limiter_mode: RateLimitMode = RateLimitMode.OFF
    rate_limiter_resources: list[RateLimiterResource] = field(default_factory=list)
    exit_on_error: bool = True
    strict_readiness: bool = True
    exit_timeout: int = 30
    model_load_thread_count: int = 4
    backend_configuration: dict[str, dict[str, str]] = field(default_factory=dict)
    poll_interval: float = 15.0

    def engine_options(self) -> EngineOptions:
        repositories = self.model_repository
        if not isinstance(repositories, list):
            repositories = [repositories]
        if not repositories:
            raise InvalidArgumentError("Model repository must be specified.")
        folders: list[str | Path] = []
        for repository in repositories:
            text = str(repository)
            if "://" in text:
                folders.append(text)
                continue
            path = Path(text)
            if not path.is_dir():
                raise InvalidArgumentError(f"failed to stat file {text}: model repository does not exist")
            folders.append(path)
        resources = []
        for resource in self.rate_limiter_resources:
            spec = f"{resource.name}:{resource.count}"
            resources.append(spec if resource.device < 0 else f"{spec}:{resource.device}")
        return EngineOptions(
            repositories=folders,
            server_id=self.server_id,
            strict_model_config=self.strict_model_config,
            strict_readiness=self.strict_readiness,
            rate_limit="execution_count" if self.rate_limiter_mode == RateLimitMode.EXEC_COUNT else "off",
            rate_limit_resources=resources,
            backend_settings={name: dict(values) for name, values in self.backend_configuration.items()},
            model_control_mode=ModelControlMode(self.model_control_mode).name.lower(),
            load_models=list(self.startup_models),
            poll_seconds=self.poll_interval,
            load_threads=self.model_load_thread_count,
            exit_timeout=float(self.exit_timeout),
        )
