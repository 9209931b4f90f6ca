"""The model manager: the table of models (name -> entry, the versions that serve) and when they
load, reload and unload; it answers "which model serves this".

Loading one version is ``loader.py``; the order ensembles and their members need is
``dependencies.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tritonlite.backends import BackendSettings
from tritonlite.core.errors import TritonError, internal, invalid_arg, not_found, unavailable
from tritonlite.core.response_cache import ResponseCache
from tritonlite.models import dependencies
from tritonlite.models.loader import (
    LoadSettings,
    load_ensemble_version,
    load_version,
    new_version,
    prepare_config,
    stop_version,
)
from tritonlite.models.model import LOADING, READY, UNAVAILABLE, UNLOADING, ModelVersion
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.agents import run_agents
from tritonlite.repository.remote import Repositories
from tritonlite.repository.scan import ModelSource, find_models, fingerprint, select_versions, version_folders
from tritonlite.scheduling.ensemble import Member, is_ensemble, member_names, validate_ensemble_members
from tritonlite.scheduling.rate_limiter import RateLimiter

log = logging.getLogger(__name__)

UNLOADED = "UNLOADED"  # a model taken out of service on request (its versions show UNAVAILABLE "unloaded")


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
    fingerprint: tuple = ()
    config: mc.ModelConfig | None = None
    # an ensemble refused against its members (Triton answers a load with the bare reason)
    member_error: bool = False
    # an ensemble taken out of service because this member was unloaded (loaded again with it)
    unloaded_with: str = ""
    # loaded because an ensemble needed it (explicit mode), not asked for by name
    autoloaded: bool = False


class ModelManager:
    """Owns every model; the frontends ask it for the version that serves a request."""

    def __init__(
        self,
        repositories: list[str | Path],
        strict_config: bool = False,
        limiter: RateLimiter | None = None,
        backend_settings: BackendSettings | None = None,
        load_threads: int = 4,
    ) -> None:
        # remote repositories (s3://, gs://, as://) are read through their local copies
        self.sources = Repositories(repositories)
        self.repositories = self.sources.local_paths
        self.strict_config = strict_config
        self.backend_settings: BackendSettings = backend_settings or {}
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.models: dict[str, ModelEntry] = {}
        # (name, version string) -> ready version; "" is the latest ready version
        self._serving: dict[tuple[str, str], ModelVersion] = {}
        self.unload_timeout = 30.0
        self.response_cache: ResponseCache | None = None
        self.list_unloaded = False  # explicit mode: the index lists models that are not loaded
        # --metrics-config summary_latencies=true: the quantiles every new version's summaries track
        self.summary_quantiles: tuple[tuple[float, float], ...] | None = None
        # --metrics-config histogram_latencies=true: decoupled versions get a first-response histogram
        self.first_response_histograms = False
        # --allow-symlinks-outside-repository: a model folder or config.pbtxt may lead out of its repository
        self.allow_symlinks_outside_repository = False
        self.model_config_name = ""  # --model-config-name
        # --allow-cpu-fallback-for-gpu-instances: KIND_GPU groups load on the CPU where there is no GPU
        self.cpu_fallback_for_gpu_instances = False
        # --model-execute-timeout-secs: the watchdog's limit on one execute of every model (0: none)
        self.execute_timeout_s = 0.0
        self._load_slots = asyncio.Semaphore(max(load_threads, 1))
        self._generation = 0
        self._retiring: dict[asyncio.Task, list[ModelVersion]] = {}  # draining task -> its versions

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

    def is_ready(self, name: str, version: str = "") -> bool:
        found = self._serving.get((name, version))
        return found is not None and found.healthy and found.instances_ready()

    def all_ready(self) -> bool:
        return all(entry.state in (READY, UNLOADED) for entry in self.models.values())

    def index(self, ready_only: bool = False) -> list[dict]:
        rows: list[dict] = []
        names = set(self.models)
        if self.list_unloaded and not ready_only:
            names |= set(self._scan()[0])  # explicit mode lists every model of the repositories
        for name in sorted(names):
            if name not in self.models:
                rows.append({"name": name})
                continue
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

    async def load_all(self, only: list[str] | None = None) -> None:
        """Load the repositories' models at startup: all of them, or only the named ones.

        A remote repository that cannot be read raises (the server does not start).
        """
        everything = only is None or "*" in only
        await self._sync(None if everything else only)
        sources, duplicates = self._scan()
        if everything:
            wanted = list(sources.values())
            for name, reason in duplicates.items():
                self.models[name] = ModelEntry(name, None, reason=reason, state=UNAVAILABLE)
        else:
            missing = [name for name in only if name not in sources]
            for name in missing:
                log.error("failed to load '%s': model not found in any model repository", name)
                self.models[name] = ModelEntry(
                    name, None, reason="model not found in any model repository", state=UNAVAILABLE
                )
            wanted = [sources[name] for name in only if name in sources]
            # an ensemble brings its members (and theirs), as in Triton
            wanted = await dependencies.with_members(wanted, sources, self.strict_config, self._sync)
        for wave in dependencies.load_waves(wanted, self.strict_config):
            entries = await asyncio.gather(*(self._build(source) for source in wave))
            for entry in entries:
                self._install(entry)

    def _scan(self) -> tuple[dict[str, ModelSource], dict[str, str]]:
        return find_models(self.repositories, self.allow_symlinks_outside_repository, self.model_config_name)

    async def _sync(self, names: list[str] | None = None) -> None:
        """Bring the local copies of remote repositories up to date (the named models' files, or all)."""
        if self.sources.remotes:
            await asyncio.to_thread(self.sources.sync, names)

    async def load(self, source: ModelSource, config_override: mc.ModelConfig | None = None) -> ModelEntry:
        """Load (or reload) one model and put it in service; returns the new entry."""
        entry = await self._build(source, config_override)
        self._install(entry)
        return entry

    async def _build(self, source: ModelSource, config_override: mc.ModelConfig | None = None) -> ModelEntry:
        """Load every selected version of a model, without putting it in service yet."""
        entry = ModelEntry(source.name, source, fingerprint=fingerprint(source.path))
        async with self._load_slots:
            started = time.monotonic()  # a version's load time runs from here to its READY
            try:
                settings = self._load_settings()
                config = await asyncio.to_thread(prepare_config, source, settings, config_override)
                versions = select_versions(version_folders(source.path), config.version_policy)
                if not versions:
                    raise invalid_arg(
                        f"at least one version must be available under the version policy of model '{source.name}'"
                    )
                await run_agents(config, source.path)
            except TritonError as exc:
                entry.state, entry.reason = UNAVAILABLE, exc.message
                log.error("failed to load '%s': %s", source.name, exc.message)
                log.info("failed to load '%s'", source.name)
                return entry
            entry.config = config
            if not is_ensemble(config):
                self._generation += 1
                generation = self._generation
                for version in versions:
                    entry.versions[version] = new_version(source, version, config, settings)
                await asyncio.gather(
                    *(load_version(model, settings, generation, started) for model in entry.versions.values())
                )
        if is_ensemble(config):
            self._load_ensemble(entry, config, versions, settings, started)
        if entry.member_error:
            return entry
        entry.state = READY if entry.versions and all(v.ready for v in entry.versions.values()) else UNAVAILABLE
        if entry.state == READY:
            log.info("successfully loaded '%s'", source.name)
        else:
            log.info("failed to load '%s'", source.name)
        return entry

    def _load_ensemble(
        self, entry: ModelEntry, config: mc.ModelConfig, versions: list[int], settings: LoadSettings, started: float
    ) -> None:
        """Validate an ensemble against its members as they serve now; READY when it is valid."""
        assert entry.source is not None
        members: dict[str, Member | None] = {}
        for name in member_names(config):
            member = self.models.get(name)
            ready = [v for v in member.versions.values() if v.ready] if member is not None else []
            serving = (name, "") in self._serving
            members[name] = Member(ready[0].config, [v.version for v in ready]) if ready and serving else None
        try:
            decoupled = validate_ensemble_members(config, members)
        except TritonError as exc:
            entry.state, entry.reason, entry.member_error = UNAVAILABLE, exc.message, True
            log.error("failed to load '%s': %s", entry.name, exc.status_text())
            return
        config.model_transaction_policy.decoupled = decoupled
        for version in versions:
            entry.versions[version] = load_ensemble_version(entry.source, version, config, settings, self.get, started)

    def _load_settings(self) -> LoadSettings:
        """The settings every version loaded from now on gets (the engine sets some after __init__)."""
        return LoadSettings(
            limiter=self.limiter,
            strict_config=self.strict_config,
            backend_settings=self.backend_settings,
            response_cache=self.response_cache,
            summary_quantiles=self.summary_quantiles,
            first_response_histograms=self.first_response_histograms,
            cpu_fallback_for_gpu_instances=self.cpu_fallback_for_gpu_instances,
            execute_timeout_s=self.execute_timeout_s,
        )

    def dependents(self, name: str) -> list[str]:
        """The ensembles that run ``name`` as a step."""
        return dependencies.dependents(name, {entry.name: entry.config for entry in self.models.values()})

    def _install(self, entry: ModelEntry) -> None:
        """Serve ``entry`` from now on; versions it replaces finish their requests, then stop."""
        old = self.models.get(entry.name)
        self.models[entry.name] = entry
        self._refresh_serving(entry)
        if old is not None:
            self._retire(list(old.versions.values()))

    def _retire(self, versions: list[ModelVersion], reason: str = "") -> None:
        task = asyncio.get_running_loop().create_task(self._drain(versions, reason))
        self._retiring[task] = versions
        task.add_done_callback(self._forget_retired)

    def _forget_retired(self, task: asyncio.Task) -> None:
        self._retiring.pop(task, None)

    async def _drain(self, versions: list[ModelVersion], reason: str) -> None:
        """Wait (bounded) for in-flight requests of retired versions, then stop their instances."""
        deadline = time.monotonic() + self.unload_timeout
        for model in versions:
            if reason:
                model.state = UNLOADING
            while model.stats.pending > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            # a hung execute must not hold the unload for ever: bounded, then its instances are abandoned
            left = max(deadline - time.monotonic(), UNLOAD_GRACE_S)
            await self._stop_in_time(model, left, "it was unloaded")
            if reason:
                model.state, model.reason = UNAVAILABLE, reason

    async def unload(self, name: str) -> None:
        """Take a model out of service; its requests in flight finish first (bounded by the exit timeout)."""
        entry = self.models.get(name)
        if entry is None:
            return
        for key in [k for k in self._serving if k[0] == name]:
            del self._serving[key]
        entry.state = UNLOADED
        versions = [v for v in entry.versions.values() if v.scheduler is not None]
        await self._drain(versions, "unloaded")
        for dependent in self.dependents(name):  # an ensemble cannot serve without its members
            if any(key[0] == dependent for key in self._serving):
                await self.unload(dependent)
                self.models[dependent].unloaded_with = name

    async def _reload_dependents(self, name: str) -> None:
        """A member was (re)loaded: load the ensembles that run it again, validated against it."""
        for dependent in self.dependents(name):
            entry = self.models[dependent]
            serving = any(key[0] == dependent for key in self._serving)
            if entry.source is None or not (serving or entry.unloaded_with or entry.member_error):
                continue
            rebuilt = await self._build(entry.source)
            if rebuilt.state == READY or not serving:
                self._install(rebuilt)
                if rebuilt.state == READY:
                    await self._reload_dependents(dependent)

    # --- the model repository API (explicit mode) -------------------------------------------------

    async def load_model(
        self,
        name: str,
        config_override: mc.ModelConfig | None = None,
        source: ModelSource | None = None,
        _loading: frozenset[str] = frozenset(),
    ) -> None:
        """Load or reload a model, with Triton's errors; a failed reload keeps the old version serving.

        Loading an ensemble first loads the members that do not serve yet (as Triton does).
        """
        if source is None:
            await self._sync([name])
            sources, duplicates = self._scan()
            source = sources.get(name)
            if source is None or name in duplicates:
                raise internal(f"failed to load '{name}', failed to poll from model repository")
        peeked = config_override
        if peeked is None:
            peeked = dependencies.peek_config(source, self.strict_config)
        if peeked is not None and is_ensemble(peeked):
            for member in member_names(peeked):
                if member in _loading or member == name or self.is_ready(member):
                    continue
                try:
                    await self.load_model(member, _loading=_loading | {name})
                except TritonError as exc:
                    log.error("failed to load '%s' for ensemble '%s': %s", member, name, exc.message)
        entry = await self._build(source, config_override)
        old = self.models.get(name)
        serving = old is not None and any(key[0] == name for key in self._serving)
        if entry.state == READY or not serving:
            self._install(entry)
            entry.autoloaded = bool(_loading)
        if entry.state == READY:
            await self._reload_dependents(name)
            return
        if entry.member_error:
            raise invalid_arg(f"load failed for model '{name}': {entry.reason}\n")
        if not entry.versions:
            if config_override is not None:
                raise invalid_arg(f"failed to load '{name}': {entry.reason}")
            raise internal(f"failed to load '{name}', failed to poll from model repository")
        failed = [v for v in sorted(entry.versions.values(), key=lambda v: v.version) if not v.ready]
        details = "".join(f"version {v.version} is at {v.state} state: {v.reason};\n" for v in failed)
        if serving:
            for model in entry.versions.values():  # the new versions that did load are not used
                self._retire([model])
        raise invalid_arg(f"load failed for model '{name}': {details}")

    async def unload_model(self, name: str, unload_dependents: bool = False) -> None:
        """Unload a model; unknown names are fine (as in Triton).

        With ``unload_dependents`` the members an ensemble loaded for itself are unloaded too
        (not those loaded by name, nor those another serving ensemble runs).
        """
        entry = self.models.get(name)
        await self.unload(name)
        if entry is not None:
            entry.unloaded_with = ""  # unloaded on request: a member's load does not bring it back
        if unload_dependents and entry is not None and entry.config is not None and is_ensemble(entry.config):
            for member in member_names(entry.config):
                found = self.models.get(member)
                if found is None or not found.autoloaded:
                    continue
                if any(key[0] == other for other in self.dependents(member) for key in self._serving):
                    continue
                await self.unload_model(member, unload_dependents=True)

    async def poll(self) -> bool:
        """One poll of the repositories: load new models, reload changed ones, unload removed ones.

        Returns whether any model was loaded, reloaded or unloaded.
        """
        try:
            await self._sync()
        except TritonError as exc:  # an unreachable bucket must not unload what serves
            log.error("%s; keeping the models that serve", exc.message)
            return False
        sources, duplicates = self._scan()
        removed = [name for name in self.models if name not in sources and name not in duplicates]
        for name in removed:
            await self.unload(name)
            self.models.pop(name, None)
        changed = []
        for name, source in sources.items():
            entry = self.models.get(name)
            if entry is None or entry.fingerprint != fingerprint(source.path) or entry.source != source:
                changed.append(source)
        for source in changed:
            log.info("model '%s' changed in the repository: loading", source.name)
            entry = await self._build(source)
            old = self.models.get(source.name)
            serving = old is not None and any(key[0] == source.name for key in self._serving)
            if entry.state == READY or not serving:
                self._install(entry)
                if entry.state == READY:
                    await self._reload_dependents(source.name)
            else:
                old.fingerprint = entry.fingerprint  # do not retry a broken change every poll
                log.error("failed to reload '%s': keeping the version that serves", source.name)
        return bool(removed or changed)

    def retiring(self) -> bool:
        """Whether replaced versions are still draining their requests."""
        return bool(self._retiring)

    async def wait_retired(self) -> None:
        if self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    def _refresh_serving(self, entry: ModelEntry) -> None:
        for key in [k for k in self._serving if k[0] == entry.name]:
            del self._serving[key]
        ready = [v for v in entry.versions.values() if v.ready]
        for model in ready:
            self._serving[(entry.name, model.version_str)] = model
        if ready:
            self._serving[(entry.name, "")] = max(ready, key=lambda v: v.version)

    def _all_versions(self) -> list[ModelVersion]:
        """Every version, those still draining after a reload included."""
        versions = [model for entry in self.models.values() for model in entry.versions.values()]
        return versions + [model for retired in self._retiring.values() for model in retired]

    def in_flight(self) -> int:
        """Requests handed to a version and not answered yet (queued or executing)."""
        return sum(model.stats.pending for model in self._all_versions())

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every request in flight to be answered; whether they were."""
        deadline = time.monotonic() + timeout
        while self.in_flight():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def abandon_busy(self) -> int:
        """Give up on every instance still executing (the exit timeout expired): its requests are
        answered with an error, a process instance is killed. Returns how many were abandoned."""
        count = 0
        for model in self._all_versions():
            for runner in model.runners:
                if runner.busy:
                    runner.abandon(_exit_timeout_error(model))
                    count += 1
        return count

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop every version, its instances finalized, within ``timeout`` seconds (None: no limit).
        The instances of a version that has not stopped by then are abandoned (a process instance is
        killed, a thread left behind). Returns whether everything stopped in time."""
        self._serving.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        clean = True
        if self._retiring:
            _, late = await asyncio.wait(list(self._retiring), timeout=_left(deadline))
            clean = not late
        versions = self._all_versions()
        stopped = await asyncio.gather(*(self._stop_in_time(model, _left(deadline)) for model in versions))
        clean = clean and all(stopped)
        for model in versions:
            model.state = UNAVAILABLE
        self.sources.close()  # after the models stopped: their files may be in the remote copies
        return clean

    async def _stop_in_time(self, model: ModelVersion, timeout: float | None, why: str = "the server stopped") -> bool:
        """Stop a version (its instances finalized) within ``timeout`` seconds (None: no limit);
        past it, its instances are abandoned (their requests answered with an error, process instances
        killed, stuck threads left behind). Returns whether it stopped in time."""
        task = asyncio.ensure_future(self._stop_version(model))
        done, _ = await asyncio.wait([task], timeout=timeout)
        if done:
            return True
        task.cancel()
        log.error("'%s' version %s did not stop within the exit timeout", model.name, model.version_str)
        for runner in model.runners:
            runner.abandon(_exit_timeout_error(model, why))
        return False

    async def _stop_version(self, model: ModelVersion) -> None:
        try:
            await stop_version(model, self.limiter)
        except Exception:  # one model failing to stop must not stop the others
            log.exception("stopping '%s' version %s failed", model.name, model.version_str)


# How long a version's instances get to finalize when its requests took the whole exit timeout.
UNLOAD_GRACE_S = 1.0


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _exit_timeout_error(model: ModelVersion, why: str = "the server stopped") -> TritonError:
    return unavailable(
        f"Exit timeout expired: {why} before model '{model.name}' version {model.version_str} "
        "finished executing the request"
    )
