"""The model manager: loads every model of the repositories and answers "which model serves this"."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tritonlite.backends import BackendSettings, InstanceSpec, auto_complete
from tritonlite.core.errors import TritonError, invalid_arg, not_found, unavailable
from tritonlite.models.model import LOADING, READY, UNAVAILABLE, ModelVersion
from tritonlite.models.warmup import run_warmup
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import (
    backend_of,
    complete_config,
    read_config,
    validate_config,
)
from tritonlite.repository.scan import ModelSource, find_models, select_versions, version_folders
from tritonlite.scheduling.direct import DirectScheduler
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import INLINE_MODES, InstanceRunner
from tritonlite.scheduling.rate_limiter import RateLimiter, instance_rate_limit

log = logging.getLogger(__name__)

_KIND_NAMES = {
    mc.ModelInstanceGroup.KIND_CPU: "CPU",
    mc.ModelInstanceGroup.KIND_GPU: "GPU",
    mc.ModelInstanceGroup.KIND_MODEL: "MODEL",
    mc.ModelInstanceGroup.KIND_AUTO: "CPU",
}


# config parameter: may a fast model's execute run on the event loop (auto), never, or always
INLINE_PARAMETER = "TRITONLITE_EXECUTE_INLINE"


def _string_parameter(config: mc.ModelConfig, key: str, default: str) -> str:
    if key in config.parameters:
        return config.parameters[key].string_value.strip().lower()
    return default


def parse_version(version: str) -> int:
    """A request's version string as a number, with Triton's error for anything else."""
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number <= 0 and version != "-1":
        raise invalid_arg(
            f"failed to get model version from specified version string '{version}' (details: stol), "
            "version should be an integral value > 0"
        )
    return number


@dataclass
class ModelEntry:
    """A model of the repository: its versions, or the reason it has none."""

    name: str
    source: ModelSource | None
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    reason: str = ""
    state: str = LOADING


class ModelManager:
    """Owns every model; the frontends ask it for the version that serves a request."""

    def __init__(
        self,
        repositories: list[str | Path],
        strict_config: bool = False,
        limiter: RateLimiter | None = None,
        backend_settings: BackendSettings | None = None,
    ) -> None:
        self.repositories = [Path(r) for r in repositories]
        self.strict_config = strict_config
        self.backend_settings: BackendSettings = backend_settings or {}
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.models: dict[str, ModelEntry] = {}
        # (name, version string) -> ready version; "" is the latest ready version
        self._serving: dict[tuple[str, str], ModelVersion] = {}

    # --- lookup (the hot path) -----------------------------------------------------------------

    def get(self, name: str, version: str = "") -> ModelVersion:
        """The ready version that serves (name, version), or Triton's error."""
        found = self._serving.get((name, version))
        if found is not None:
            return found
        raise self._lookup_error(name, version)

    def _lookup_error(self, name: str, version: str) -> TritonError:
        entry = self.models.get(name)
        if entry is None or not entry.versions:
            # a model whose config failed has no versions at all: Triton says "not found"
            return not_found(f"Request for unknown model: '{name}' is not found")
        if version:
            number = parse_version(version)
            if number not in entry.versions:
                return not_found(f"Request for unknown model: '{name}' version {version} is not found")
            return unavailable(f"Request for unknown model: '{name}' version {version} is not at ready state")
        return not_found(f"Request for unknown model: '{name}' has no available versions")

    def find(self, name: str, version: str = "") -> ModelVersion:
        """A ready version, or Triton's error (for metadata and config)."""
        return self.get(name, version)

    def is_ready(self, name: str, version: str = "") -> bool:
        return (name, version) in self._serving

    def all_ready(self) -> bool:
        return all(entry.state == READY for entry in self.models.values())

    def index(self, ready_only: bool = False) -> list[dict]:
        rows: list[dict] = []
        for name in sorted(self.models):
            entry = self.models[name]
            if not entry.versions:
                if not ready_only:
                    row = {"name": name, "state": entry.state}
                    if entry.reason:
                        row["reason"] = entry.reason
                    rows.append(row)
                continue
            for version in sorted(entry.versions):
                model = entry.versions[version]
                if ready_only and not model.ready:
                    continue
                row = {"name": name, "version": model.version_str, "state": model.state}
                if model.reason:
                    row["reason"] = model.reason
                rows.append(row)
        return rows

    # --- loading ---------------------------------------------------------------------------------

    async def load_all(self) -> None:
        sources, duplicates = find_models(self.repositories)
        for name, reason in duplicates.items():
            self.models[name] = ModelEntry(name, None, reason=reason, state=UNAVAILABLE)
        await asyncio.gather(*(self.load(source) for source in sources.values()))

    async def load(self, source: ModelSource) -> ModelEntry:
        entry = ModelEntry(source.name, source)
        self.models[source.name] = entry
        try:
            config = await asyncio.to_thread(self._prepare_config, source)
            versions = select_versions(version_folders(source.path), config.version_policy)
            if not versions:
                raise invalid_arg(
                    f"at least one version must be available under the version policy of model '{source.name}'"
                )
        except TritonError as exc:
            entry.state, entry.reason = UNAVAILABLE, exc.message
            log.error("failed to load '%s': %s", source.name, exc.message)
            return entry
        await asyncio.gather(*(self._load_version(entry, config, v) for v in versions))
        entry.state = READY if any(v.ready for v in entry.versions.values()) else UNAVAILABLE
        self._refresh_serving(entry)
        return entry

    def _prepare_config(self, source: ModelSource) -> mc.ModelConfig:
        config = read_config(source.path, self.strict_config)
        if not self.strict_config:
            versions = version_folders(source.path)
            newest = source.path / str(versions[-1]) if versions else None
            config = auto_complete(config, source.path, newest, self.backend_settings)
        complete_config(config, source.name)
        validate_config(config, source.name)
        return config

    async def _load_version(self, entry: ModelEntry, config: mc.ModelConfig, version: int) -> None:
        assert entry.source is not None
        model = ModelVersion(entry.name, version, config, entry.source.path)
        entry.versions[version] = model
        started = time.monotonic()
        version_path = entry.source.path / str(version)
        runners: list[InstanceRunner] = []
        keys: list[str] = []
        try:
            backend = backend_of(config)
            if not (version_path / config.default_model_filename).exists() and backend == "python":
                raise unavailable(
                    f"unable to find '{version_path / config.default_model_filename}' for model '{entry.name}'"
                )
            inline_mode = _string_parameter(config, INLINE_PARAMETER, "auto")
            if inline_mode not in INLINE_MODES:
                raise invalid_arg(
                    f"parameter {INLINE_PARAMETER} of model '{entry.name}' must be one of "
                    f"{', '.join(INLINE_MODES)}, got '{inline_mode}'"
                )
            for group in config.instance_group:
                kind = _KIND_NAMES.get(group.kind, "CPU")
                devices = list(group.gpus) if group.kind == mc.ModelInstanceGroup.KIND_GPU and group.gpus else [0]
                for device in devices:
                    for index in range(group.count):
                        instance_name = f"{group.name}_{len(runners)}" if len(devices) > 1 else f"{group.name}_{index}"
                        spec = InstanceSpec(
                            model_name=entry.name,
                            version=version,
                            model_path=entry.source.path,
                            config=config,
                            config_json=model.config_json,
                            instance_name=instance_name,
                            kind=kind,
                            device_id=device,
                            backend_settings=dict(self.backend_settings.get(backend, {})),
                        )
                        runner = InstanceRunner(instance_name, inline_mode)
                        runners.append(runner)
                        await runner.start(backend, spec)
                        if self.limiter.enabled:
                            resources, priority = instance_rate_limit(group)
                            key = f"{entry.name}/{version}/{instance_name}"
                            self.limiter.register(key, device, resources, priority)
                            keys.append(key)
            model.limiter_keys = keys
            pool = InstancePool(runners, self.limiter, keys)
            if config.HasField("dynamic_batching") and config.max_batch_size > 0:
                model.scheduler = DynamicBatcher(runners, config, model.stats, pool)
            else:
                model.scheduler = DirectScheduler(runners, model.stats, config.max_batch_size > 0, pool)
            if len(config.model_warmup):
                await run_warmup(model, runners)
            model.state = READY
            model.load_seconds = time.monotonic() - started
        except TritonError as exc:
            model.state, model.reason = UNAVAILABLE, exc.status_text()
            log.error("failed to load '%s' version %d: %s", entry.name, version, model.reason)
            await self._release(runners, keys)
        except Exception as exc:  # a backend bug must not take the server down
            model.state, model.reason = UNAVAILABLE, f"{type(exc).__name__}: {exc}"
            log.exception("failed to load '%s' version %d", entry.name, version)
            await self._release(runners, keys)

    async def _release(self, runners: list[InstanceRunner], keys: list[str]) -> None:
        for key in keys:
            self.limiter.unregister(key)
        for runner in runners:
            await runner.stop()

    def _refresh_serving(self, entry: ModelEntry) -> None:
        for key in [k for k in self._serving if k[0] == entry.name]:
            del self._serving[key]
        ready = [v for v in entry.versions.values() if v.ready]
        for model in ready:
            self._serving[(entry.name, model.version_str)] = model
        if ready:
            self._serving[(entry.name, "")] = max(ready, key=lambda v: v.version)

    async def shutdown(self) -> None:
        self._serving.clear()
        for entry in self.models.values():
            for model in entry.versions.values():
                if model.scheduler is not None:
                    await model.scheduler.stop()
                    model.scheduler = None
                for key in model.limiter_keys:
                    self.limiter.unregister(key)
                model.limiter_keys = []
                model.state = UNAVAILABLE
