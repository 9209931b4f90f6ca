"""The metrics endpoint: Triton's families, labels and values after a known workload."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from exposition import scrape
from tritonclient.utils import InferenceServerException

from tritonlite.metrics.system import cpu_memory, cpu_utilization

# Triton 2.51's families, types and HELP texts (captured from the reference server).
TRITON_FAMILIES = {
    "nv_inference_request_success": ("counter", "Number of successful inference requests, all batch sizes"),
    "nv_inference_request_failure": ("counter", "Number of failed inference requests, all batch sizes"),
    "nv_inference_count": ("counter", "Number of inferences performed (does not include cached requests)"),
    "nv_inference_exec_count": ("counter", "Number of model executions performed (does not include cached requests)"),
    "nv_inference_request_duration_us": (
        "counter", "Cumulative inference request duration in microseconds (includes cached requests)"),
    "nv_inference_queue_duration_us": (
        "counter", "Cumulative inference queuing duration in microseconds (includes cached requests)"),
    "nv_inference_compute_input_duration_us": (
        "counter", "Cumulative compute input duration in microseconds (does not include cached requests)"),
    "nv_inference_compute_infer_duration_us": (
        "counter", "Cumulative compute inference duration in microseconds (does not include cached requests)"),
    "nv_inference_compute_output_duration_us": (
        "counter", "Cumulative inference compute output duration in microseconds (does not include cached requests)"),
    "nv_inference_pending_request_count": (
        "gauge", "Instantaneous number of pending requests awaiting execution per-model."),
    "nv_pinned_memory_pool_total_bytes": ("gauge", "Pinned memory pool total memory size, in bytes"),
    "nv_pinned_memory_pool_used_bytes": ("gauge", "Pinned memory pool used memory size, in bytes"),
    "nv_cpu_utilization": ("gauge", "CPU utilization rate [0.0 - 1.0]"),
    "nv_cpu_memory_total_bytes": ("gauge", "CPU total memory (RAM), in bytes"),
    "nv_cpu_memory_used_bytes": ("gauge", "CPU used memory (RAM), in bytes"),
}  # fmt: skip


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_families_match_triton(server):
    families, _ = scrape(server)
    for name, (kind, help_text) in TRITON_FAMILIES.items():
        assert families[name] == {"help": help_text, "type": kind}, name


def test_values_after_a_known_workload(server):
    client = httpclient.InferenceServerClient(server.http)
    _, before = scrape(server)
    a = np.ones(4, np.float32)
    for _ in range(2):
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(a)
        client.infer("add_sub", inputs)
    failing = httpclient.InferInput("INPUT0", [4], "FP32")
    failing.set_data_from_numpy(a)
    with pytest.raises(InferenceServerException):
        client.infer("exec_fails", [failing])
    batch = httpclient.InferInput("INPUT0", [3, 4], "FP32")
    batch.set_data_from_numpy(np.ones((3, 4), np.float32))
    client.infer("identity_batched", [batch])
    _, after = scrape(server)

    def delta(name, **labels):
        return value(after, name, **labels) - before.get((name, tuple(sorted(labels.items()))), 0)

    add_sub = {"model": "add_sub", "version": "1"}
    assert delta("nv_inference_request_success", **add_sub) == 2
    assert delta("nv_inference_count", **add_sub) == 2 and delta("nv_inference_exec_count", **add_sub) == 2
    assert delta("nv_inference_request_duration_us", **add_sub) > 0
    assert delta("nv_inference_request_failure", model="exec_fails", reason="BACKEND", version="1") == 1
    for reason in ("REJECTED", "CANCELED", "OTHER"):
        assert delta("nv_inference_request_failure", model="exec_fails", reason=reason, version="1") == 0
    batched = {"model": "identity_batched", "version": "1"}
    assert delta("nv_inference_count", **batched) == 3 and delta("nv_inference_exec_count", **batched) == 1
    assert value(after, "nv_inference_pending_request_count", **add_sub) == 0
    assert value(after, "nv_cpu_memory_total_bytes") > value(after, "nv_cpu_memory_used_bytes") > 0
    assert 0.0 <= value(after, "nv_cpu_utilization") <= 1.0
    assert ("nv_inference_count", tuple(sorted({"model": "init_fails", "version": "1"}.items()))) not in after


@pytest.mark.parametrize("path", ["/other", "/", "/v2/metrics", "/metrics/extra", "/metricsx"])
def test_get_of_other_paths_is_an_empty_200(server, path):
    # captured from Triton 2.51: 'HTTP/1.1 200 OK', Content-Type: text/plain; charset=utf-8,
    # Content-Length: 0, no body, for a GET of any path but /metrics
    answer = requests.get(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["content-length"] == "0" and answer.content == b""


@pytest.mark.parametrize(("method", "path"), [("POST", "/other"), ("POST", "/metrics"), ("PUT", "/other"),
                                              ("DELETE", "/metrics")])  # fmt: skip
def test_other_methods_are_405(server, method, path):
    # captured from Triton 2.51: 'HTTP/1.1 405 Not Allowed', Content-Length: 30, Content-Type: text/plain,
    # body {"error":"Method Not Allowed"}, on any path (/metrics too); the reason phrase is uvicorn's here
    answer = requests.request(method, f"http://127.0.0.1:{server.metrics_port}{path}", data=b"abc", timeout=5)
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "text/plain"
    assert answer.headers["content-length"] == "30"
    assert answer.content == b'{"error":"Method Not Allowed"}'


def test_get_of_metrics_with_a_query_renders(server):
    answer = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics?x=1", timeout=5)
    assert answer.status_code == 200 and answer.text.startswith("# HELP nv_")


def test_system_readings_are_sane():
    total, used = cpu_memory()
    assert total > 0 and 0 < used <= total
    cpu_utilization()
    assert 0.0 <= cpu_utilization() <= 1.0
