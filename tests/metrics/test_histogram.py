"""nv_inference_first_response_histogram_ms (--metrics-config histogram_latencies=true): buckets from the
defaults or the model's model_metrics, prometheus-cpp's exposition, and decoupled requests through a real
server. Triton 2.51 has no such histogram; the facts are those of newer releases' documentation and tests."""

from __future__ import annotations

import queue
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from conftest import EXAMPLES, TEST_REPOSITORY
from google.protobuf import text_format
from serverutil import RunningServer

from tritonlite.engine import Engine, EngineOptions
from tritonlite.metrics.families import render
from tritonlite.models.model import READY, ModelVersion
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.statistics.histogram import DEFAULT_BUCKETS, FIRST_RESPONSE_FAMILY, Histogram, histogram_buckets
from tritonlite.statistics.model_stats import ModelStats

FAMILY = FIRST_RESPONSE_FAMILY
# the block of Triton's own test (qa/L0_metrics: test_buckets_override expects le -1, 0, 1, 2.5, +Inf)
OVERRIDE = """
model_metrics {
  metric_control [
    {
      metric_identifier { family: "nv_inference_first_response_histogram_ms" }
      histogram_options { buckets: [ -1, 0.0, 1, 2.5 ] }
    }
  ]
}
"""


def config(text: str = "") -> mc.ModelConfig:
    return text_format.Parse('name: "m" backend: "python" model_transaction_policy { decoupled: true }\n' + text,
                             mc.ModelConfig())  # fmt: skip


# --- buckets and observations ------------------------------------------------------------------


def test_default_buckets_are_tritons():
    assert DEFAULT_BUCKETS == (100, 500, 2000, 5000)
    assert histogram_buckets(config()) == DEFAULT_BUCKETS


def test_model_metrics_overrides_the_buckets():
    assert histogram_buckets(config(OVERRIDE)) == (-1.0, 0.0, 1.0, 2.5)


def test_other_families_and_options_leave_the_defaults():
    other = OVERRIDE.replace(FAMILY, "nv_inference_request_summary_us")
    assert histogram_buckets(config(other)) == DEFAULT_BUCKETS
    no_options = f'model_metrics {{ metric_control [ {{ metric_identifier {{ family: "{FAMILY}" }} }} ] }}'
    assert histogram_buckets(config(no_options)) == DEFAULT_BUCKETS


def test_unsorted_buckets_are_sorted_and_deduplicated(caplog):
    text = OVERRIDE.replace("[ -1, 0.0, 1, 2.5 ]", "[ 5, 1, 5, 2 ]")
    assert histogram_buckets(config(text)) == (1.0, 2.0, 5.0)
    assert "not strictly increasing" in caplog.text


def test_observations_fall_in_the_first_bucket_that_holds_them():
    histogram = Histogram((1.0, 10.0))
    for value in (0, 1, 2, 10, 11, 500):
        histogram.observe(value)
    assert histogram.cumulative() == [(1.0, 2), (10.0, 4), (float("inf"), 6)]  # le: value <= bound
    assert (histogram.count, histogram.sum) == (6, 524)


def test_first_response_is_observed_in_whole_milliseconds():
    stats = ModelStats()
    stats.record_first_response(5_000_000)  # no histogram: nothing happens
    stats.first_response = Histogram()
    stats.record_first_response(150_999_999)
    assert (stats.first_response.count, stats.first_response.sum) == (1, 150)


# --- exposition --------------------------------------------------------------------------------


def fake_engine(*versions: ModelVersion) -> Engine:
    models = {}
    for model in versions:
        model.state = READY
        models.setdefault(model.name, SimpleNamespace(versions={}, config=model.config)).versions[model.version] = model
    engine = Engine(EngineOptions(repositories=[]))
    engine.models.models = models
    return engine


def histogram_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if FAMILY in line]


def test_exposition_is_prometheus_cpps():
    model = ModelVersion("m", 1, config(OVERRIDE), Path("."))
    model.stats.first_response = Histogram(histogram_buckets(model.config))
    for ns in (0, 2_000_000, 7_000_000):
        model.stats.record_first_response(ns)
    plain = ModelVersion("plain", 1, config(), Path("."))  # no histogram: no series
    text = render(fake_engine(model, plain), allow_cpu_metrics=False)
    assert histogram_lines(text) == [
        "# HELP nv_inference_first_response_histogram_ms Duration from request to first response in milliseconds",
        "# TYPE nv_inference_first_response_histogram_ms histogram",
        'nv_inference_first_response_histogram_ms_count{model="m",version="1"} 3',
        'nv_inference_first_response_histogram_ms_sum{model="m",version="1"} 9',
        'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="-1"} 0',
        'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="0"} 1',
        'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="1"} 1',
        'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="2.5"} 2',
        'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="+Inf"} 3',
    ]


def test_no_histogram_no_family():
    text = render(fake_engine(ModelVersion("m", 1, config(), Path("."))), allow_cpu_metrics=False)
    assert FAMILY not in text


# --- through a real server ---------------------------------------------------------------------

# a streaming ensemble: its one step is the decoupled repeat_decoupled
ENSEMBLE = """
name: "stream_pipe"
platform: "ensemble"
max_batch_size: 0
input [{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]
ensemble_scheduling {
  step [
    {
      model_name: "repeat_decoupled"
      model_version: -1
      input_map { key: "IN" value: "IN" }
      output_map { key: "OUT" value: "OUT" }
    }
  ]
}
"""

SLOW_FIRST = """
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            time.sleep(0.15)
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([1], np.int32))]),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("histogram")
    shutil.copytree(EXAMPLES / "repeat_decoupled", root / "repeat_decoupled")
    custom = root / "repeat_custom"
    shutil.copytree(EXAMPLES / "repeat_decoupled", custom)
    text = (custom / "config.pbtxt").read_text().replace('name: "repeat_decoupled"', 'name: "repeat_custom"')
    (custom / "config.pbtxt").write_text(text + OVERRIDE)
    slow = root / "slow_first"
    (slow / "1").mkdir(parents=True)
    (slow / "1" / "model.py").write_text(SLOW_FIRST)
    (slow / "config.pbtxt").write_text(
        'backend: "python"\nmodel_transaction_policy { decoupled: true }\n'
        'input [{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
    )
    shutil.copytree(TEST_REPOSITORY / "add_sub", root / "add_sub")  # not decoupled: no histogram
    (root / "stream_pipe" / "1").mkdir(parents=True)
    (root / "stream_pipe" / "config.pbtxt").write_text(ENSEMBLE)
    return root


def scrape(server) -> tuple[str, dict]:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if match:
            labels = tuple(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            samples[(match.group(1), labels)] = float(match.group(3))
    return text, samples


def histogram_of(samples: dict, model: str) -> tuple[float, float, list[tuple[str, float]]]:
    """(count, sum, [(le, cumulative count)] in exposition order) of one model's version 1."""
    key = (("model", model), ("version", "1"))
    buckets = [(dict(labels)["le"], value) for (name, labels), value in samples.items()
               if name == f"{FAMILY}_bucket" and labels[:2] == key]  # fmt: skip
    return samples[(f"{FAMILY}_count", key)], samples[(f"{FAMILY}_sum", key)], buckets


def stream_requests(server, model: str, inputs: list[np.ndarray]) -> int:
    """Send each input as one request on a gRPC stream; wait for every final flag; return the responses."""
    client = grpcclient.InferenceServerClient(server.grpc)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for values in inputs:
            tensor = grpcclient.InferInput("IN", list(values.shape), "INT32")
            tensor.set_data_from_numpy(values)
            client.async_stream_infer(model, [tensor], enable_empty_final_response=True)
        finals = responses = 0
        while finals < len(inputs):
            result, error = results.get(timeout=30)
            assert error is None, error
            response = result.get_response()
            if response.parameters["triton_final_response"].bool_param:
                finals += 1
            if result.as_numpy("OUT") is not None:
                responses += 1
        return responses
    finally:
        client.stop_stream()
        client.close()


@pytest.fixture(scope="module")
def server(repository):
    running = RunningServer([repository], "--metrics-config=histogram_latencies=true")
    yield running
    running.stop()


def test_series_for_decoupled_models_from_load(server):
    text, samples = scrape(server)
    assert f"# TYPE {FAMILY} histogram" in text
    assert f"# HELP {FAMILY} Duration from request to first response in milliseconds" in text
    assert not [key for key in samples if key[0].startswith(FAMILY) and ("model", "add_sub") in key[1]]
    _, _, buckets = histogram_of(samples, "repeat_decoupled")
    assert [le for le, _ in buckets] == ["100", "500", "2000", "5000", "+Inf"]
    # Triton's test_buckets_override: the overridden buckets, and no others for that model
    _, _, buckets = histogram_of(samples, "repeat_custom")
    assert [le for le, _ in buckets] == ["-1", "0", "1", "2.5", "+Inf"]


def test_one_observation_per_request_with_a_response(server):
    before, _, _ = histogram_of(scrape(server)[1], "repeat_decoupled")
    inputs = [np.arange(n, dtype=np.int32) + 1 for n in (1, 3, 2, 5, 1, 4)]
    assert stream_requests(server, "repeat_decoupled", inputs) == 16
    count, total, buckets = histogram_of(scrape(server)[1], "repeat_decoupled")
    assert count - before == len(inputs)
    assert total >= 0 and total == int(total)  # whole milliseconds
    cumulative = [value for _, value in buckets]
    assert cumulative == sorted(cumulative) and cumulative[-1] == count
    # a request that ends with the final flag alone sends no response: it is not observed
    assert stream_requests(server, "repeat_decoupled", [np.zeros(0, np.int32)]) == 0
    assert histogram_of(scrape(server)[1], "repeat_decoupled")[0] == count


def test_the_time_to_the_first_response_is_measured(server):
    assert stream_requests(server, "slow_first", [np.ones(1, np.int32)] * 2) == 2
    count, total, buckets = histogram_of(scrape(server)[1], "slow_first")
    assert count == 2 and total >= 300
    assert dict(buckets)["100"] == 0 and dict(buckets)["+Inf"] == 2


def test_a_streaming_ensemble_and_its_decoupled_step_both_observe(server):
    # as in Triton's test_ensemble_decoupled: one series for the ensemble, one for its decoupled member
    _, samples = scrape(server)
    ensemble_before = histogram_of(samples, "stream_pipe")[0]
    member_before = histogram_of(samples, "repeat_decoupled")[0]
    assert stream_requests(server, "stream_pipe", [np.ones(2, np.int32)] * 3) == 6
    _, samples = scrape(server)
    assert histogram_of(samples, "stream_pipe")[0] - ensemble_before == 3
    assert histogram_of(samples, "repeat_decoupled")[0] - member_before == 3


def test_custom_buckets_count_the_same_way(server):
    assert stream_requests(server, "repeat_custom", [np.ones(2, np.int32)] * 3) == 6
    count, _, buckets = histogram_of(scrape(server)[1], "repeat_custom")
    assert count == 3 and dict(buckets)["-1"] == 0 and dict(buckets)["+Inf"] == 3


def test_without_the_flag_there_is_no_histogram(repository):
    running = RunningServer([repository], "--metrics-config=histogram_latencies=false")
    try:
        stream_requests(running, "repeat_decoupled", [np.ones(2, np.int32)])
        text, _ = scrape(running)
        assert FAMILY not in text
        assert "nv_inference_request_success" in text
    finally:
        running.stop()
