"""Dependencies between models: an ensemble loads after the models it runs, and follows them.

What an ensemble runs is read from its config.pbtxt before anything loads (``peek_config``):
``with_members`` adds the members a set of models needs, ``load_waves`` orders a set so that each
ensemble loads after its members, and ``dependents`` names the ensembles that run a model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from tritonlite.core.errors import TritonError
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import read_config
from tritonlite.repository.scan import ModelSource
from tritonlite.scheduling.ensemble import is_ensemble, member_names


def peek_config(source: ModelSource, strict: bool) -> mc.ModelConfig | None:
    """A model's config.pbtxt as written (None when it cannot be read)."""
    try:
        return read_config(source.path, strict, source.root, source.config_name)
    except TritonError:
        return None


def members_of(source: ModelSource, strict: bool) -> list[str]:
    """The models an ensemble runs, read from its config.pbtxt."""
    config = peek_config(source, strict)
    return member_names(config) if config is not None else []


async def with_members(
    wanted: list[ModelSource],
    sources: Mapping[str, ModelSource],
    strict: bool,
    sync: Callable[[list[str]], Awaitable[None]],
) -> list[ModelSource]:
    """``wanted`` and the models its ensembles run (and theirs), as Triton loads them.

    ``sync`` brings a member's files up to date before its own config is read.
    """
    wanted = list(wanted)
    for source in wanted:  # grows: an ensemble brings its members
        for member in members_of(source, strict):
            if member in sources and sources[member] not in wanted:
                await sync([member])
                wanted.append(sources[member])
    return wanted


def load_waves(sources: list[ModelSource], strict: bool) -> list[list[ModelSource]]:
    """``sources`` in the order to load them: the models that are no ensembles all at once, then
    the ensembles, each after the ensembles it runs (a circle loads in one wave and fails there)."""
    configs = {source.name: peek_config(source, strict) for source in sources}
    ensembles = [s for s in sources if (config := configs[s.name]) is not None and is_ensemble(config)]
    waves = [[source for source in sources if source not in ensembles]]
    while ensembles:
        names = {source.name for source in ensembles}
        wave = [s for s in ensembles if not names & set(member_names(configs[s.name]))] or ensembles
        waves.append(wave)
        ensembles = [source for source in ensembles if source not in wave]
    return waves


def dependents(name: str, configs: Mapping[str, mc.ModelConfig | None]) -> list[str]:
    """The ensembles (by model name, among ``configs``) that run ``name`` as a step."""
    return [
        model
        for model, config in configs.items()
        if config is not None and is_ensemble(config) and name in member_names(config)
    ]
