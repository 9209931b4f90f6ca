"""deploy/grafana: the dashboard is well formed, its PromQL parses, and it charts only metrics tritonlite serves."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
import yaml
from conftest import EXAMPLES
from deploy_helpers import DEPLOY
from serverutil import RunningServer

from tritonlite.metrics.gpu import FAMILIES as GPU_FAMILIES

GRAFANA = DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "tritonlite-dashboard.json").read_text())
# Grafana's own variables, replaced by what Grafana would put there before Prometheus sees the query
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*", "${datasource}": "prometheus"}


def panels() -> list[dict]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def expressions() -> list[str]:
    found = [target["expr"] for panel in panels() for target in panel["targets"]]
    found += [variable["query"]["query"] for variable in DASHBOARD["templating"]["list"] if variable["type"] == "query"]
    return found


def as_prometheus_sees_it(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def served_families(exposition: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\w+) ", exposition, re.MULTILINE))


def charted_metrics() -> set[str]:
    return {name for expr in expressions() for name in re.findall(r"\bnv_\w+", expr)}


def test_layout_is_a_valid_grid():
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, panel["title"]
        covered = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered


def test_every_panel_queries_the_selected_datasource():
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["min"] == 0, f"{panel['title']}: axes start at zero"
    names = [variable["name"] for variable in DASHBOARD["templating"]["list"]]
    assert names == ["datasource", "model"]


def test_every_query_is_valid_promql():
    promql = pytest.importorskip("promql_parser", reason="promql-parser is in the test extras")
    for expr in expressions():
        if expr.startswith("label_values("):  # a Grafana function, not PromQL; its argument is
            expr = expr[len("label_values(") : expr.rindex(",")]
        promql.parse(as_prometheus_sees_it(expr))  # raises on a syntax error


def test_provisioning_points_at_the_dashboard():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yaml").read_text())["providers"][0]
    readme = (GRAFANA / "README.md").read_text()
    assert f"{provider['options']['path']}/tritonlite-dashboard.json" in readme
    assert yaml.safe_load((GRAFANA / "provisioning" / "datasources.yaml").read_text())["datasources"][0]["type"] == (
        "prometheus"
    )


@pytest.fixture(scope="module")
def exposition(tmp_path_factory) -> str:
    """A scrape of a server that has answered requests, with the response cache on."""
    root = tmp_path_factory.mktemp("grafana")
    shutil.copytree(EXAMPLES / "add_sub", root / "add_sub")
    with (root / "add_sub" / "config.pbtxt").open("a") as handle:
        handle.write("\nresponse_cache { enable: true }\n")
    server = RunningServer([root], "--cache-config=local,size=1048576")
    try:
        client = httpclient.InferenceServerClient(server.http)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        for item in inputs:
            item.set_data_from_numpy(np.ones(4, np.float32))
        client.infer("add_sub", inputs)
        client.infer("add_sub", inputs)
        return requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    finally:
        server.stop()


def test_every_charted_metric_is_served(exposition):
    families = served_families(exposition)
    gpu_only = {name for name, _ in GPU_FAMILIES}  # served only where NVML sees a GPU
    missing = {name for name in charted_metrics() - gpu_only if name not in families}
    assert not missing, f"the dashboard charts metrics tritonlite does not serve: {sorted(missing)}"
    assert charted_metrics() & gpu_only, "the dashboard has GPU panels"


def test_the_dashboard_covers_the_request_families(exposition):
    families = served_families(exposition)
    per_request = {name for name in families if name.startswith("nv_inference_")}
    histograms = {name for name in per_request if name.endswith(("_histogram_ms", "_summary_us"))}
    assert per_request - histograms <= charted_metrics()
