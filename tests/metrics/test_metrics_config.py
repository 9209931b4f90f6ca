"""--metrics-config and --metrics-interval-ms, checked against what Triton 2.51 answered
(tests/reference_data/metrics/triton_2.51_metrics.json, same flags, same workload)."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from conftest import TEST_REPOSITORY
from exposition import parse
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

from tritonlite.cli import main
from tritonlite.metrics.config import DEFAULT_QUANTILES, MetricsConfig, parse_metrics_config
from tritonlite.metrics.system import SystemReadings
from tritonlite.statistics.summary import Summary

FACTS = json.loads((Path(__file__).parents[1] / "reference_data" / "metrics" / "triton_2.51_metrics.json").read_text())
SUMMARIES = [
    "nv_inference_request_summary_us", "nv_inference_queue_summary_us", "nv_inference_compute_input_summary_us",
    "nv_inference_compute_infer_summary_us", "nv_inference_compute_output_summary_us",
]  # fmt: skip
COUNTER_OF = dict(zip(SUMMARIES, [
    "nv_inference_request_duration_us", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us",
], strict=True))  # fmt: skip


def triton(run: str) -> tuple[dict, dict]:
    return parse(FACTS["runs"][run]["exposition_after_workload"])


def without_gpu_families(families: dict) -> set:
    """The family names but the GPU ones: those exist only where NVML finds a GPU, and the machine
    that captured Triton's answers had none (tests/metrics/test_gpu_metrics.py covers them)."""
    return {name for name in families if not name.startswith("nv_gpu_") and name != "nv_energy_consumption"}


def series(samples: dict, name: str) -> dict:
    """labels (without quantile) -> {suffix or quantile: value} for one summary family."""
    out: dict = {}
    for (sample, labels), value in samples.items():
        if sample not in (name, f"{name}_count", f"{name}_sum"):
            continue
        plain = tuple(pair for pair in labels if pair[0] != "quantile")
        quantile = dict(labels).get("quantile")
        key = quantile if quantile is not None else sample[len(name) + 1 :]
        out.setdefault(plain, {})[key] = value
    return out


# --- flag parsing: Triton's rules and texts ----------------------------------------------------


def test_settings_follow_triton():
    config, notes = parse_metrics_config([])
    assert config == MetricsConfig() and notes == []
    assert config.quantiles == ((0.5, 0.05), (0.9, 0.01), (0.95, 0.001), (0.99, 0.001), (0.999, 0.001))
    config, _ = parse_metrics_config(["summary_latencies=true", "counter_latencies=false"], "500")
    assert config.summary_latencies and not config.counter_latencies and config.interval_ms == 500
    config, _ = parse_metrics_config(["summary_latencies=yes", "counter_latencies=no"])  # only true / false count
    assert not config.summary_latencies and config.counter_latencies
    config, notes = parse_metrics_config(["summary_quantiles=0.5:0.05,0.9:0.01"])
    assert config.quantiles == ((0.5, 0.05), (0.9, 0.01)) and notes == []


def test_bad_quantiles_are_skipped_with_tritons_lines():
    log = FACTS["runs"]["bad_quantile_option"]["error_lines"]
    config, notes = parse_metrics_config(["summary_quantiles=0.5,0.9:x"])
    assert config.quantiles == DEFAULT_QUANTILES  # no good item: the defaults stay
    for note in notes:
        assert any(line.endswith(f'"{note}"') for line in log), note
    assert len(notes) == 2


def test_other_settings_are_accepted_and_reported():
    config, notes = parse_metrics_config(["model_load_time=true", "no_such=1"])
    assert config == MetricsConfig() and len(notes) == 2
    assert "nv_model_load_duration_secs is always exposed" in notes[0] and "no_such=1" in notes[1]


def test_histogram_latencies_only_with_true():
    config, notes = parse_metrics_config(["histogram_latencies=true"])
    assert config.histogram_latencies and notes == []
    for value in ("True", "1", "yes", "false"):
        config, notes = parse_metrics_config([f"histogram_latencies={value}"])
        assert not config.histogram_latencies and notes == [], value


@pytest.mark.parametrize("case", ["metrics_config_without_equals", "metrics_interval_not_a_number"])
def test_startup_refusals_are_tritons(case, capsys):
    fact = FACTS["startup_refusals"][case]
    assert main(["--model-repository=/nonexistent", *fact["flags"]]) == fact["returncode"] == 1
    error = capsys.readouterr().err.strip()
    assert error and error in fact["output_tail"]


# --- the summary itself ------------------------------------------------------------------------


def test_quantiles_are_tritons_for_the_captured_observations():
    # add_sub in the capture: 3 requests, _sum 19669, p50 144, p90..p999 274 -> observations 144, 274, 19251
    _, samples = triton("summary_and_histogram")
    add_sub = series(samples, "nv_inference_request_summary_us")[(("model", "add_sub"), ("version", "1"))]
    summary = Summary(DEFAULT_QUANTILES)
    for value in (19251, 144, 274):
        summary.observe(value)
    assert (summary.count, summary.sum) == (add_sub["count"], add_sub["sum"])
    assert {f"{q:g}": v for q, v in summary.collect()} == {k: v for k, v in add_sub.items() if k[0].isdigit()}
    identity = Summary(DEFAULT_QUANTILES)  # 2 observations: every quantile is the smaller one, as Triton's 420
    identity.observe(420)
    identity.observe(22151)
    assert {v for _, v in identity.collect()} == {420.0}


def test_empty_window_is_nan_and_old_observations_leave_it():
    now = [0.0]
    summary = Summary(DEFAULT_QUANTILES, clock=lambda: now[0])
    assert all(math.isnan(v) for _, v in summary.collect())
    summary.observe(10)
    now[0] = 47.0
    summary.observe(20, times=3)
    assert [v for _, v in summary.collect()][-1] == 20.0
    now[0] = 61.0  # the first slice (0-12 s) has left the 48-60 s window
    assert {v for _, v in summary.collect()} == {20.0} and (summary.count, summary.sum) == (4, 70)
    now[0] = 200.0
    assert all(math.isnan(v) for _, v in summary.collect())


def test_large_values_keep_bounded_memory():
    summary = Summary(DEFAULT_QUANTILES)
    for value in range(100_000, 1_100_000, 7):
        summary.observe(value)
    assert len(summary.window()) < 30_000
    p50 = dict(summary.collect())[0.5]
    assert abs(p50 - 600_000) / 1_000_000 <= 0.05  # within the 0.05 rank error configured for p50


def test_system_readings_refresh_every_interval():
    readings = SystemReadings(allow_cpu=True, interval_ms=20)
    assert readings.refreshes == 1 and readings.cpu[1] > 0
    readings.current()
    assert readings.refreshes == 1  # a scrape does not read /proc again

    async def poll_a_while():
        task = asyncio.ensure_future(readings.run())
        await asyncio.sleep(0.25)
        task.cancel()

    asyncio.run(poll_a_while())
    assert readings.refreshes >= 4
    at_scrape = SystemReadings(allow_cpu=True, interval_ms=0)
    at_scrape.current()
    assert at_scrape.refreshes == 2


# --- through a real server: the same flags and workload as the capture --------------------------


def build_repository(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    for name in ("add_sub", "identity", "identity_batched", "exec_fails"):
        shutil.copytree(TEST_REPOSITORY / name, repo / name)
    cached = repo / "add_sub_cached"
    shutil.copytree(TEST_REPOSITORY / "add_sub", cached)
    config = (cached / "config.pbtxt").read_text().replace('name: "add_sub"', 'name: "add_sub_cached"')
    (cached / "config.pbtxt").write_text(config + "\nresponse_cache { enable: true }\n")
    return repo


def workload(server) -> None:
    """The capture's workload (tests/reference_data/metrics/capture_metrics.py)."""
    client = httpclient.InferenceServerClient(server.http)
    ones = np.ones(4, np.float32)
    for model in ["add_sub"] * 3 + ["add_sub_cached"] * 2:
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(ones)
        inputs[1].set_data_from_numpy(ones)
        client.infer(model, inputs)
    failing = httpclient.InferInput("INPUT0", [4], "FP32")
    failing.set_data_from_numpy(ones)
    with pytest.raises(InferenceServerException):
        client.infer("exec_fails", [failing])
    batch = httpclient.InferInput("INPUT0", [3, 4], "FP32")
    batch.set_data_from_numpy(np.ones((3, 4), np.float32))
    client.infer("identity_batched", [batch])
    for _ in range(2):
        single = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        single.set_data_from_numpy(np.ones((1, 4), np.float32))
        client.infer("identity", [single])


def scrape_after_workload(tmp_path, run: str) -> tuple[str, str]:
    server = RunningServer([build_repository(tmp_path)], *FACTS["runs"][run]["flags"])
    try:
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        before = requests.get(url, timeout=5).text
        workload(server)
        return before, requests.get(url, timeout=5).text
    finally:
        server.stop()


def label_names(samples: dict, family: str) -> set:
    names = {family, f"{family}_count", f"{family}_sum"}
    return {tuple(k for k, _ in labels) for (name, labels) in samples if name in names}


def test_summaries_match_triton(tmp_path):
    before, after = scrape_after_workload(tmp_path, "summary_and_histogram")
    families, samples = parse(after)
    theirs, their_samples = triton("summary_and_histogram")
    # every family Triton shows (minus the pinned memory/CPU/GPU ones that depend on the machine) is here,
    # with Triton's HELP, TYPE and label names, and nothing more but the load times of newer releases
    assert without_gpu_families(families) == set(theirs) | {"nv_model_load_duration_secs", "nv_model_instance_restarts"}
    for name, described in theirs.items():
        assert families[name] == described, name
        assert label_names(samples, name) == label_names(their_samples, name), name
    # histogram_latencies=true: the histogram is for decoupled models only, and none of these is
    assert "nv_inference_first_response_histogram_ms" not in families
    # the same series (models) per summary family; the cached model has no request summary, as in Triton
    for family in [*SUMMARIES, "nv_cache_hit_summary_per_model", "nv_cache_miss_summary_per_model"]:
        assert set(series(samples, family)) == set(series(their_samples, family)), family
        for labels, values in series(samples, family).items():
            assert set(values) == set(series(their_samples, family)[labels]), (family, labels)
    counts = {"add_sub": 3, "identity": 2, "identity_batched": 1}
    for family in SUMMARIES:
        ours, triton_values = series(samples, family), series(their_samples, family)
        for model, count in counts.items():
            labels = (("model", model), ("version", "1"))
            assert ours[labels]["count"] == triton_values[labels]["count"] == count, (family, model)
            # _sum is the counter's value, as Triton's docs say (and its capture shows), but for rounding: a
            # summary adds whole microseconds per request, the counter rounds the total
            assert 0 <= samples[(COUNTER_OF[family], labels)] - ours[labels]["sum"] < count, (family, model)
            quantiles = [v for k, v in ours[labels].items() if k[0].isdigit()]
            assert all(0 <= v <= ours[labels]["sum"] for v in quantiles)
            if count == 1:
                assert set(quantiles) == {ours[labels]["sum"]}
    # before any request the windows are empty: Nan, as prometheus-cpp writes it
    _, first = parse(before)
    assert math.isnan(first[(SUMMARIES[0], (("model", "add_sub"), ("quantile", "0.5"), ("version", "1")))])


def test_custom_quantiles_and_no_latency_counters_match_triton(tmp_path):
    _, after = scrape_after_workload(tmp_path, "custom_quantiles_no_counters")
    families, samples = parse(after)
    theirs, their_samples = triton("custom_quantiles_no_counters")
    assert without_gpu_families(families) == set(theirs) | {"nv_model_load_duration_secs", "nv_model_instance_restarts"}
    assert not [name for name in families if name.endswith("_duration_us") or name.endswith("_per_model")
                and not name.endswith("summary_per_model")]  # fmt: skip
    for family in SUMMARIES:
        for labels, values in series(samples, family).items():
            assert set(values) == set(series(their_samples, family)[labels]) == {"count", "sum", "0.5", "0.9"}
    # Triton 2.51 stops counting successes with counter_latencies=false (it shows 0); tritonlite goes on
    assert samples[("nv_inference_request_success", (("model", "add_sub"), ("version", "1")))] == 3
