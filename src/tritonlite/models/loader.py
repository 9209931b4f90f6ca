"""Loading one version of a model: its config made ready, its instances started group by group,
its scheduler, its warmup; and stopping it again.

The manager (``manager.py``) decides which models and versions load and when; this module loads
one. A version that fails ends UNAVAILABLE with the reason, its instances released.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tritonlite.backends import BackendSettings, InstanceSpec, auto_complete
from tritonlite.core.errors import TritonError, invalid_arg, unavailable
from tritonlite.core.response_cache import ResponseCache
from tritonlite.models.model import READY, UNAVAILABLE, ModelVersion
from tritonlite.models.warmup import run_warmup
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import backend_of, complete_config, read_config, validate_config
from tritonlite.repository.scan import ModelSource, version_folders
from tritonlite.scheduling.ensemble import validate_ensemble_config
from tritonlite.scheduling.factory import create_scheduler
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import INLINE_MODES, InstanceRunner
from tritonlite.scheduling.rate_limiter import RateLimiter, instance_rate_limit
from tritonlite.statistics.histogram import Histogram, histogram_buckets
from tritonlite.statistics.summary import LatencySummaries

log = logging.getLogger(__name__)

_KIND_NAMES = {
    mc.ModelInstanceGroup.KIND_CPU: "CPU",
    mc.ModelInstanceGroup.KIND_GPU: "GPU",
    mc.ModelInstanceGroup.KIND_MODEL: "MODEL",
    mc.ModelInstanceGroup.KIND_AUTO: "CPU",
}

# config parameter: may a fast model's execute run on the event loop (auto), never, or always
INLINE_PARAMETER = "TRITONLITE_EXECUTE_INLINE"

# how often a version that is still loading says so
PROGRESS_SECONDS = 5.0
# config parameter: the watchdog's limit on one execute, in milliseconds (0: none); it overrides
# the server's --model-execute-timeout-secs
EXECUTE_TIMEOUT_PARAMETER = "TRITONLITE_EXECUTE_TIMEOUT_MS"


@dataclass(frozen=True)
class LoadSettings:
    """What the server decides for every version it loads (the manager's settings as a load starts)."""

    limiter: RateLimiter
    strict_config: bool = False
    backend_settings: BackendSettings = field(default_factory=dict)
    response_cache: ResponseCache | None = None  # for versions whose config enables the cache
    summary_quantiles: tuple[tuple[float, float], ...] | None = None  # latency summaries to keep
    first_response_histograms: bool = False  # decoupled versions get a first-response histogram
    # --allow-cpu-fallback-for-gpu-instances: KIND_GPU groups load without a GPU (on the CPU)
    cpu_fallback_for_gpu_instances: bool = False
    # --model-execute-timeout-secs: the watchdog's limit on one execute (0: none)
    execute_timeout_s: float = 0.0


@dataclass
class Instances:
    """The instances a version started: their runners and the rate limiter keys they hold."""

    runners: list[InstanceRunner] = field(default_factory=list)
    limiter_keys: list[str] = field(default_factory=list)

    async def release(self, limiter: RateLimiter) -> None:
        for key in self.limiter_keys:
            limiter.unregister(key)
        for runner in self.runners:
            await runner.stop()


def prepare_config(
    source: ModelSource, settings: LoadSettings, override: mc.ModelConfig | None = None
) -> mc.ModelConfig:
    """A model's config made ready to load: read (or the ``override`` a load request gave),
    auto-completed unless the config is strict or given, Triton's defaults filled, validated."""
    if override is not None:
        config = mc.ModelConfig()
        config.CopyFrom(override)
    else:
        config = read_config(source.path, settings.strict_config, source.root, source.config_name)
        if not settings.strict_config:
            versions = version_folders(source.path)
            newest = source.path / str(versions[-1]) if versions else None
            config = auto_complete(config, source.path, newest, settings.backend_settings)
    complete_config(config, source.name)
    validate_config(config, source.name)
    validate_ensemble_config(config)
    return config


def new_version(source: ModelSource, version: int, config: mc.ModelConfig, settings: LoadSettings) -> ModelVersion:
    """A version still LOADING, its statistics set up as the server's metrics want them."""
    model = ModelVersion(source.name, version, config, source.path)
    if settings.summary_quantiles is not None:
        model.stats.summaries = LatencySummaries(settings.summary_quantiles, config.response_cache.enable)
    if settings.first_response_histograms and config.model_transaction_policy.decoupled:
        model.stats.first_response = Histogram(histogram_buckets(config))
    return model


def load_ensemble_version(
    source: ModelSource,
    version: int,
    config: mc.ModelConfig,
    settings: LoadSettings,
    lookup: Callable[[str, str], object],
    started: float,
) -> ModelVersion:
    """A READY version of an ensemble (validated against its members already): it has no instances,
    its scheduler finds the members' versions through ``lookup``."""
    model = new_version(source, version, config, settings)
    model.scheduler = create_scheduler(config, model.stats, version=model.version_str, lookup=lookup)
    model.state = READY
    model.load_seconds = time.monotonic() - started
    return model


async def load_version(model: ModelVersion, settings: LoadSettings, generation: int, started: float) -> None:
    """Start a version's instances, its scheduler and its warmup: READY, or UNAVAILABLE with the reason.

    ``generation`` tells the rate limiter keys of this load from those of the load it replaces.
    """
    assert model.config is not None
    config = model.config
    instances = Instances()
    log.info("loading: %s:%d", model.name, model.version)
    progress = asyncio.get_running_loop().create_task(_report_progress(model, started))
    try:
        backend = backend_of(config)
        _check_gpu_groups(config, settings.cpu_fallback_for_gpu_instances)
        inline_mode = _check(model, backend)
        await _start_instances(model, backend, inline_mode, settings, generation, instances)
        model.limiter_keys = instances.limiter_keys
        model.runners = instances.runners
        pool = InstancePool(instances.runners, settings.limiter, instances.limiter_keys)
        model.scheduler = create_scheduler(
            config, model.stats, runners=instances.runners, pool=pool, model_path=model.model_path
        )
        if len(config.model_warmup):
            for sample in config.model_warmup:
                log.debug("Generating warmup sample data for '%s'", sample.name)
            await run_warmup(model, instances.runners)
        if config.HasField("response_cache") and config.response_cache.enable:
            model.cache = settings.response_cache  # None when the server has no cache configured
        model.state = READY
        model.load_seconds = time.monotonic() - started
    except TritonError as exc:
        model.state, model.reason = UNAVAILABLE, exc.status_text()
        log.error("failed to load '%s' version %d: %s", model.name, model.version, model.reason)
        await instances.release(settings.limiter)
    except Exception as exc:  # a backend bug must not take the server down
        model.state, model.reason = UNAVAILABLE, f"{type(exc).__name__}: {exc}"
        log.exception("failed to load '%s' version %d", model.name, model.version)
        await instances.release(settings.limiter)
    finally:
        progress.cancel()


async def _report_progress(model: ModelVersion, started: float) -> None:
    """A line every PROGRESS_SECONDS while a version loads, so that a slow load is not a silent one."""
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        log.info("loading: %s:%d, %d s so far", model.name, model.version, time.monotonic() - started)


async def stop_version(model: ModelVersion, limiter: RateLimiter) -> None:
    """Stop a version's scheduler (and with it its instances) and give back its rate limiter keys."""
    scheduler, model.scheduler = model.scheduler, None
    keys, model.limiter_keys = model.limiter_keys, []
    try:
        if scheduler is not None:
            await scheduler.stop()
    finally:
        for key in keys:
            limiter.unregister(key)


def _check_gpu_groups(config: mc.ModelConfig, cpu_fallback: bool) -> None:
    """Triton refuses a KIND_GPU instance group without a GPU, or on a GPU id it does not see, in
    its words (captured from Triton 2.51); ``cpu_fallback`` runs such groups on the CPU instead."""
    groups = [group for group in config.instance_group if group.kind == mc.ModelInstanceGroup.KIND_GPU]
    if not groups:
        return
    gpus = visible_gpus()
    for group in groups:
        prefix = f"instance group {group.name} of model {config.name}"
        if not group.gpus and not gpus:
            message = f"{prefix} has kind KIND_GPU but no GPUs are available"
        else:
            missing = [gpu for gpu in group.gpus if gpu not in gpus]
            if not missing:
                continue
            message = (
                f"{prefix} specifies invalid or unsupported gpu id {missing[0]}. GPUs with at least the minimum "
                f"required CUDA compute compatibility of 6.000000 are: {', '.join(map(str, gpus))}"
            )
        if not cpu_fallback:
            raise invalid_arg(message)
        log.warning("%s; its instances run on the CPU (--allow-cpu-fallback-for-gpu-instances)", message)


@functools.cache
def visible_gpus() -> tuple[int, ...]:
    """The ids of the GPUs this process sees (as CUDA numbers them), probed once: NVML, then
    cuda-python's runtime, then torch.cuda, each imported lazily, then the NVIDIA driver's
    /proc/driver/nvidia/gpus; the first that answers counts. No answer: no GPUs."""
    for probe in (_nvml_gpu_count, _cuda_runtime_gpu_count, _torch_gpu_count, _driver_gpu_count):
        try:
            count = probe()
        except Exception:  # not installed, no driver, an old driver: ask the next one
            count = None
        if count is not None:
            log.debug("%s sees %d GPU(s)", probe.__name__, count)
            return tuple(range(count))
    return ()


def _nvml_gpu_count() -> int | None:
    import pynvml

    pynvml.nvmlInit()
    try:
        return _cuda_visible(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


def _cuda_runtime_gpu_count() -> int | None:
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    error, count = runtime.cudaGetDeviceCount()
    if int(error) == int(runtime.cudaError_t.cudaErrorNoDevice):
        return 0
    return int(count) if int(error) == 0 else None  # no driver, or one too old for these bindings


def _torch_gpu_count() -> int | None:
    import torch

    return (torch.cuda.device_count() or None) if torch.version.cuda else None  # a CPU-only torch knows nothing


def _driver_gpu_count() -> int | None:
    gpus = Path("/proc/driver/nvidia/gpus")
    return _cuda_visible(len(list(gpus.iterdir()))) if gpus.is_dir() else None


def _cuda_visible(physical: int) -> int:
    """How many of ``physical`` GPUs CUDA_VISIBLE_DEVICES leaves visible (CUDA stops at the first
    entry it cannot use)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return physical
    count = 0
    for entry in value.split(","):
        entry = entry.strip()
        if not ((entry.isdigit() and int(entry) < physical) or entry.startswith(("GPU-", "MIG-"))):
            break
        count += 1
    return min(count, physical)


def _check(model: ModelVersion, backend: str) -> str:
    """What a version needs before its instances start; returns its inline mode."""
    config = model.config
    assert config is not None
    if backend == "python":
        _check_python(model, config)
    inline_mode = _string_parameter(config, INLINE_PARAMETER, "auto")
    if inline_mode not in INLINE_MODES:
        raise invalid_arg(
            f"parameter {INLINE_PARAMETER} of model '{model.name}' must be one of "
            f"{', '.join(INLINE_MODES)}, got '{inline_mode}'"
        )
    return inline_mode


def execute_timeout(model: ModelVersion, settings: LoadSettings) -> float:
    """The watchdog's limit on one execute, in seconds (0: none): the model's parameter, or the server's."""
    assert model.config is not None
    text = _string_parameter(model.config, EXECUTE_TIMEOUT_PARAMETER, "")
    if not text:
        return settings.execute_timeout_s
    try:
        milliseconds = float(text)
    except ValueError:
        milliseconds = -1.0
    if not milliseconds >= 0:  # negative, or NaN
        raise invalid_arg(
            f"parameter {EXECUTE_TIMEOUT_PARAMETER} of model '{model.name}' must be a number of "
            f"milliseconds (0 for no limit), got '{text}'"
        )
    return milliseconds / 1000


def _check_python(model: ModelVersion, config: mc.ModelConfig) -> None:
    """A python model needs its model.py; a decoupled one runs on threads only."""
    model_file = model.model_path / model.version_str / config.default_model_filename
    if not model_file.exists():
        raise unavailable(f"unable to find '{model_file}' for model '{model.name}'")
    if config.model_transaction_policy.decoupled:
        mode = _string_parameter(config, "TRITONLITE_INSTANCE_MODE", "thread")
        if mode == "process":
            raise invalid_arg(
                f"model '{model.name}': decoupled python models run in thread mode only "
                "(TRITONLITE_INSTANCE_MODE 'process' is not supported for them yet)"
            )


async def _start_instances(
    model: ModelVersion,
    backend: str,
    inline_mode: str,
    settings: LoadSettings,
    generation: int,
    instances: Instances,
) -> None:
    """Start the instances of every instance group (count per device), each registered with the
    rate limiter when it is on; ``instances`` holds what started, for a release on failure."""
    config = model.config
    assert config is not None
    limiter = settings.limiter
    timeout_s = execute_timeout(model, settings)
    on_restart = functools.partial(_count_restart, model)
    for group in config.instance_group:
        kind = _KIND_NAMES.get(group.kind, "CPU")
        devices = list(group.gpus) if group.kind == mc.ModelInstanceGroup.KIND_GPU and group.gpus else [0]
        for device in devices:
            for index in range(group.count):
                name = f"{group.name}_{len(instances.runners)}" if len(devices) > 1 else f"{group.name}_{index}"
                spec = InstanceSpec(
                    model_name=model.name,
                    version=model.version,
                    model_path=model.model_path,
                    config=config,
                    config_json=model.config_json,
                    instance_name=name,
                    kind=kind,
                    device_id=device,
                    backend_settings=dict(settings.backend_settings.get(backend, {})),
                )
                runner = InstanceRunner(
                    name, inline_mode, model_name=model.name, execute_timeout_s=timeout_s, on_restart=on_restart
                )
                instances.runners.append(runner)
                # Triton's backends' line for each instance they start
                log.info("TRITONBACKEND_ModelInstanceInitialize: %s (%s device %d)", name, kind, device)
                await runner.start(backend, spec)
                if limiter.enabled:
                    resources, priority = instance_rate_limit(group)
                    key = f"{model.name}/{model.version}/{name}#{generation}"
                    limiter.register(key, device, resources, priority)
                    instances.limiter_keys.append(key)


def _count_restart(model: ModelVersion) -> None:
    model.stats.instance_restarts += 1


def _string_parameter(config: mc.ModelConfig, key: str, default: str) -> str:
    if key in config.parameters:
        return config.parameters[key].string_value.strip().lower()
    return default
