"""Unit tests of models/dependencies.py (ensembles after their members) and of the scheduler each
config gets (scheduling/factory.py, as models/loader.py uses it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.protobuf import text_format

from tritonlite.models import dependencies
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.scan import ModelSource
from tritonlite.scheduling.direct import DirectScheduler
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher
from tritonlite.scheduling.ensemble import EnsembleScheduler
from tritonlite.scheduling.factory import create_scheduler
from tritonlite.scheduling.sequence_batcher import SequenceBatcher
from tritonlite.statistics.model_stats import ModelStats


def ensemble_config(*members: str) -> str:
    steps = ", ".join(f'{{ model_name: "{m}" model_version: -1 }}' for m in members)
    return f'platform: "ensemble"\nensemble_scheduling {{ step [{steps}] }}\n'


def repository(tmp_path: Path, configs: dict[str, str]) -> dict[str, ModelSource]:
    sources = {}
    for name, text in configs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text(text)
        sources[name] = ModelSource(name, tmp_path / name)
    return sources


def names(waves: list[list[ModelSource]]) -> list[list[str]]:
    return [[source.name for source in wave] for wave in waves]


def test_ensembles_load_after_their_members_and_ensembles_of_ensembles_after_those(tmp_path):
    sources = repository(
        tmp_path,
        {
            "outer": ensemble_config("inner", "b"),
            "a": 'backend: "python"',
            "inner": ensemble_config("a"),
            "b": 'backend: "python"',
        },
    )
    waves = dependencies.load_waves(list(sources.values()), strict=False)
    assert names(waves) == [["a", "b"], ["inner"], ["outer"]]


def test_a_circle_of_ensembles_loads_in_one_wave(tmp_path):
    sources = repository(tmp_path, {"x": ensemble_config("y"), "y": ensemble_config("x")})
    assert names(dependencies.load_waves(list(sources.values()), strict=False)) == [[], ["x", "y"]]


def test_with_members_brings_members_of_members_and_syncs_each(tmp_path):
    sources = repository(
        tmp_path,
        {"outer": ensemble_config("inner"), "inner": ensemble_config("a", "gone"), "a": "", "other": ""},
    )
    synced: list[list[str]] = []

    async def sync(names: list[str]) -> None:
        synced.append(names)

    wanted = asyncio.run(dependencies.with_members([sources["outer"]], sources, False, sync))
    assert [source.name for source in wanted] == ["outer", "inner", "a"]
    assert synced == [["inner"], ["a"]]


def test_dependents_are_the_ensembles_that_run_a_model():
    configs = {
        "e": text_format.Parse(ensemble_config("a"), mc.ModelConfig()),
        "a": mc.ModelConfig(),
        "broken": None,
    }
    assert dependencies.dependents("a", configs) == ["e"]
    assert dependencies.dependents("e", configs) == []


@pytest.mark.parametrize(
    ("text", "scheduler"),
    [
        ("max_batch_size: 4", DirectScheduler),
        ("max_batch_size: 0", DirectScheduler),
        ("max_batch_size: 4 dynamic_batching {}", DynamicBatcher),
        ("max_batch_size: 0 dynamic_batching {}", DirectScheduler),
        ("max_batch_size: 4 sequence_batching {}", SequenceBatcher),
    ],
)
def test_create_scheduler_picks_what_the_config_asks_for(text, scheduler):
    config = text_format.Parse('name: "m" ' + text, mc.ModelConfig())
    assert type(create_scheduler(config, ModelStats(), runners=[])) is scheduler


def test_create_scheduler_of_an_ensemble_needs_a_lookup():
    config = text_format.Parse('name: "e" ' + ensemble_config("a"), mc.ModelConfig())
    with pytest.raises(ValueError, match="lookup"):
        create_scheduler(config, ModelStats())
    scheduler = create_scheduler(config, ModelStats(), version="1", lookup=lambda name, version: None)
    assert type(scheduler) is EnsembleScheduler
