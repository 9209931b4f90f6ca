"""``create_scheduler``: the scheduler a model's config asks for, as Triton core picks it.

An ensemble runs its member models (``EnsembleScheduler``); ``sequence_batching`` routes by
correlation id (``SequenceBatcher``); ``dynamic_batching`` with ``max_batch_size > 0`` forms
batches (``DynamicBatcher``); anything else runs each request alone (``DirectScheduler``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import Scheduler
from tritonlite.scheduling.direct import DirectScheduler
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher
from tritonlite.scheduling.ensemble import EnsembleScheduler, is_ensemble
from tritonlite.scheduling.instance_pool import InstancePool
from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.scheduling.sequence_batcher import SequenceBatcher
from tritonlite.statistics.model_stats import ModelStats


def create_scheduler(
    config: mc.ModelConfig,
    stats: ModelStats,
    *,
    runners: list[InstanceRunner] | None = None,
    pool: InstancePool | None = None,
    model_path: Path | None = None,
    version: str = "",
    lookup: Callable[[str, str], object] | None = None,
) -> Scheduler:
    """The scheduler of one model version.

    An ensemble needs its ``version`` string and ``lookup`` (name, version -> the member's ready
    version); every other model its instances' ``runners``, the ``pool`` that hands them out and
    the model folder (``model_path``: a sequence batcher reads its initial states from it).
    """
    if is_ensemble(config):
        if lookup is None:
            raise ValueError(f"ensemble '{config.name}' needs a lookup of its member models")
        return EnsembleScheduler(config, version, lookup, stats)
    runners = runners if runners is not None else []
    if config.HasField("sequence_batching"):
        return SequenceBatcher(runners, config, stats, model_path)
    if config.HasField("dynamic_batching") and config.max_batch_size > 0:
        return DynamicBatcher(runners, config, stats, pool)
    return DirectScheduler(runners, stats, config.max_batch_size > 0, pool)
