"""nv_model_load_duration_secs: one gauge per loaded model version, on by default, gone after an
unload. Triton 2.51 has no such family; the facts are those of newer releases' documentation and tests."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import tritonclient.http as httpclient
from conftest import EXAMPLES, TEST_REPOSITORY
from serverutil import RunningServer
from test_histogram import ENSEMBLE

from tritonlite.engine import Engine, EngineOptions
from tritonlite.metrics.families import render
from tritonlite.models.model import READY, UNAVAILABLE, ModelVersion

FAMILY = "nv_model_load_duration_secs"


def version(name: str, number: int, seconds: float, state: str = READY) -> ModelVersion:
    model = ModelVersion(name, number, None, Path("."))
    model.state, model.load_seconds = state, seconds
    return model


def engine_with(models: dict) -> Engine:
    """An engine serving ``models`` (name -> entry with its versions), loaded by hand."""
    engine = Engine(EngineOptions(repositories=[]))
    engine.models.models = models
    return engine


def test_exposition_is_tritons():
    models = {
        "preprocessor": SimpleNamespace(versions={1: version("preprocessor", 1, 1.611378656)}),
        "multi": SimpleNamespace(versions={1: version("multi", 1, 2.0), 2: version("multi", 2, 0.5, UNAVAILABLE)}),
    }
    engine = engine_with(models)
    lines = [line for line in render(engine, allow_cpu_metrics=False).splitlines() if FAMILY in line]
    assert lines == [
        "# HELP nv_model_load_duration_secs Model load time in seconds",
        "# TYPE nv_model_load_duration_secs gauge",
        'nv_model_load_duration_secs{model="multi",version="1"} 2',  # a version that is not ready has none
        'nv_model_load_duration_secs{model="preprocessor",version="1"} 1.611378656',
    ]


def test_no_model_no_family():
    engine = engine_with({})
    assert FAMILY not in render(engine, allow_cpu_metrics=False)


# --- through a real server ---------------------------------------------------------------------


def load_times(server) -> dict[tuple[str, str], float]:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    assert text.count(f"# TYPE {FAMILY} gauge") <= 1
    found = re.findall(rf'^{FAMILY}\{{model="([^"]*)",version="([^"]*)"\}} (\S+)$', text, re.MULTILINE)
    return {(model, number): float(value) for model, number, value in found}


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("load_duration")
    for name in ("add_sub", "identity", "string_upper"):
        shutil.copytree(TEST_REPOSITORY / name, root / name)
    shutil.copytree(EXAMPLES / "repeat_decoupled", root / "repeat_decoupled")
    (root / "stream_pipe" / "1").mkdir(parents=True)
    (root / "stream_pipe" / "config.pbtxt").write_text(ENSEMBLE)  # an ensemble has its load time too
    return root


def test_every_loaded_model_has_its_load_time(repository):
    server = RunningServer([repository])  # no flag needed
    try:
        client = httpclient.InferenceServerClient(server.http)
        ready = {(row["name"], row["version"]) for row in client.get_model_repository_index() if row["state"] == READY}
        times = load_times(server)
        assert set(times) == ready and len(ready) == 5
        assert all(seconds > 0 for seconds in times.values())
    finally:
        server.stop()


def test_unload_removes_and_load_brings_back_the_load_time(repository):
    server = RunningServer(
        [repository], "--model-control-mode=explicit", "--load-model=add_sub", "--load-model=identity"
    )
    try:
        client = httpclient.InferenceServerClient(server.http)
        times = load_times(server)
        assert set(times) == {("add_sub", "1"), ("identity", "1")}
        client.unload_model("identity")
        after = load_times(server)
        assert set(after) == {("add_sub", "1")} and after[("add_sub", "1")] == times[("add_sub", "1")]
        client.unload_model("add_sub")
        assert load_times(server) == {}  # no model: no family
        client.load_model("identity")
        reloaded = load_times(server)
        assert set(reloaded) == {("identity", "1")} and reloaded[("identity", "1")] > 0
        client.load_model("identity")  # a reload: the new load's time
        assert set(load_times(server)) == {("identity", "1")}
    finally:
        server.stop()
