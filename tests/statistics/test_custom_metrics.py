"""The custom metrics registry and ``pb_utils.MetricFamily``: Triton 2.51's errors (captured from the
reference server running a python model that makes each mistake) and the exposition."""

from __future__ import annotations

import gc

import pytest

from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.backends.python.metrics_relay import JournalingMetrics, MetricsMirror
from tritonlite.statistics.custom_metrics import CustomMetrics

PREFIX = "Failed to process the request for model 'metrerr_0_0', message: "


@pytest.fixture
def registry(monkeypatch):
    fresh = CustomMetrics()
    monkeypatch.setattr(pb_utils, "_metrics", fresh)
    monkeypatch.setattr(pb_utils._context, "instance_name", "metrerr_0_0", raising=False)
    monkeypatch.setattr(pb_utils._context, "finalizers", None, raising=False)
    return fresh


def families():
    counter = pb_utils.MetricFamily(name="e_counter", description="d", kind=pb_utils.MetricFamily.COUNTER)
    gauge = pb_utils.MetricFamily(name="e_gauge", description="d", kind=pb_utils.MetricFamily.GAUGE)
    histogram = pb_utils.MetricFamily(name="e_hist", description="d", kind=pb_utils.MetricFamily.HISTOGRAM)
    return counter, gauge, histogram


def test_errors_as_triton_words_them(registry):
    counter, gauge, histogram = families()
    cm, gm = counter.Metric(labels={"a": "1"}), gauge.Metric(labels={"a": "1"})
    hm = histogram.Metric(labels={"a": "1"}, buckets=[1.0, 2.0])
    cases = {
        lambda: cm.increment(-1): "Failed to increment metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_COUNTER can only be incremented monotonically by non-negative values.",
        lambda: cm.set(3): "Failed to set metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_COUNTER does not support Set",
        lambda: cm.observe(3): "Failed to observe metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_COUNTER does not support Observe",
        lambda: hm.value(): "Failed to get metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Value",
        lambda: gm.observe(1.0): "Failed to observe metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_GAUGE does not support Observe",
        lambda: hm.increment(1): "Failed to increment metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Increment",
        lambda: hm.set(1): "Failed to set metric value: " + PREFIX
        + "TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Set",
        lambda: histogram.Metric(labels={"a": "b"}): "Failed to create metric. Missing required buckets.",
        lambda: counter.Metric(labels={"a": "c"}, buckets=[1.0]): "Failed to create metric. Unexpected buckets found.",
        lambda: histogram.Metric(labels={"a": "u"}, buckets=[2.0, 1.0]): "Error when creating Metric: " + PREFIX
        + "Bucket Boundaries must be strictly sorted",
        lambda: pb_utils.MetricFamily(name="e_counter", description="d", kind=pb_utils.MetricFamily.GAUGE):
        "Error when creating MetricFamily: " + PREFIX + "Family name already exists with different type",
        lambda: counter.Metric(labels={"a": 1}): "Error when creating Metric: " + PREFIX
        + "attempt to access JSON non-string as string",
    }  # fmt: skip
    for call, message in cases.items():
        with pytest.raises(pb_utils.TritonModelException) as caught:
            call()
        assert str(caught.value) == message
    with pytest.raises(TypeError, match="incompatible constructor arguments"):
        pb_utils.MetricFamily(name="x_bad", description="d", kind=7)
    # what Triton allows: the same family again, a gauge going down
    assert pb_utils.MetricFamily(name="e_counter", description="d", kind=pb_utils.MetricFamily.COUNTER)
    gm.increment(-2)
    assert gm.value() == -2.0


def test_exposition_and_release(registry):
    counter, gauge, histogram = families()
    shared = counter.Metric(labels={"z": "1", "a": 'q"uote'})
    again = counter.Metric(labels={"a": 'q"uote', "z": "1"})  # the same labels: the same series
    shared.increment(2)
    again.increment(0.5)
    assert shared.value() == 2.5
    hm = histogram.Metric(labels={}, buckets=[1.0])
    for value in (0.5, 1.0, 3.0):
        hm.observe(value)
    assert registry.render() == [
        "# HELP e_counter d",
        "# TYPE e_counter counter",
        'e_counter{a="q\\"uote",z="1"} 2.5',
        "# HELP e_gauge d",  # no series yet: the family alone
        "# TYPE e_gauge gauge",
        "# HELP e_hist d",
        "# TYPE e_hist histogram",
        "e_hist_count 3",
        "e_hist_sum 4.5",
        'e_hist_bucket{le="1"} 2',
        'e_hist_bucket{le="+Inf"} 3',
    ]
    del shared, again, hm, counter, gauge, histogram
    gc.collect()
    assert registry.render() == []


def test_a_stub_process_metrics_reach_the_server_registry(monkeypatch):
    server = CustomMetrics()
    stub = JournalingMetrics()
    monkeypatch.setattr(pb_utils, "_metrics", stub)
    family = pb_utils.MetricFamily(name="relayed", description="d", kind=pb_utils.MetricFamily.GAUGE)
    metric = family.Metric(labels={"k": "v"})
    metric.set(4)
    metric.increment(1)
    assert metric.value() == 5.0  # answered in the stub at once
    mirror = MetricsMirror(server)
    mirror.apply(stub.take())
    assert server.render()[-1] == 'relayed{k="v"} 5'
    assert stub.take() == []
    mirror.release_all()  # the stub ended
    assert server.render() == []
