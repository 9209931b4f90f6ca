"""The metric families Triton exposes, rendered from the engine's counters at scrape time.

Names, HELP texts, types and label names are Triton 2.51's (captured from the reference
server; see tests/reference_data), but for ``nv_model_load_duration_secs`` and
``nv_inference_first_response_histogram_ms``, which follow newer releases' documentation, and
``nv_model_instance_restarts``, tritonlite's own (Triton has no such counter).
Counters carry no ``_total`` suffix, as in Triton, so the exposition is written here rather than
through prometheus-client's counter classes, which would rename them; histogram ``le`` values are
written as prometheus-cpp writes numbers (``100``, not ``100.0``). Nothing is counted on the
request path beyond the statistics counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tritonlite.metrics.config import MetricsConfig
from tritonlite.metrics.gpu import FAMILIES as GPU_FAMILIES
from tritonlite.metrics.gpu import GpuMetrics
from tritonlite.metrics.system import SystemReadings, cpu_memory, cpu_utilization
from tritonlite.statistics.custom_metrics import REGISTRY as CUSTOM_METRICS
from tritonlite.statistics.histogram import FIRST_RESPONSE_FAMILY, FIRST_RESPONSE_HELP
from tritonlite.statistics.model_stats import FAILURE_REASONS, ModelStats
from tritonlite.statistics.summary import LATENCY_FAMILIES

if TYPE_CHECKING:
    from tritonlite.engine import Engine

# (name, type, help, value of a version's stats)
_MODEL_FAMILIES = [
    ("nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes",
     lambda s: s.success.count),
    ("nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes", None),
    ("nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)",
     lambda s: s.inference_count),
    ("nv_inference_exec_count", "counter",
     "Number of model executions performed (does not include cached requests)", lambda s: s.execution_count),
    ("nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     lambda s: (s.success.ns + s.fail.ns) // 1000),
    ("nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds (includes cached requests)",
     lambda s: s.queue.ns // 1000),
    ("nv_inference_compute_input_duration_us", "counter",
     "Cumulative compute input duration in microseconds (does not include cached requests)",
     lambda s: s.compute_input.ns // 1000),
    ("nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds (does not include cached requests)",
     lambda s: s.compute_infer.ns // 1000),
    ("nv_inference_compute_output_duration_us", "counter",
     "Cumulative inference compute output duration in microseconds (does not include cached requests)",
     lambda s: s.compute_output.ns // 1000),
    ("nv_inference_pending_request_count", "gauge",
     "Instantaneous number of pending requests awaiting execution per-model.", lambda s: s.pending),
]  # fmt: skip
# the families that --metrics-config counter_latencies=false removes
_LATENCY_COUNTERS = {name for name, *_ in _MODEL_FAMILIES if name.endswith("_duration_us")}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    if value != value:  # NaN, as prometheus-cpp writes it
        return "Nan"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _versions(engine: Engine) -> Iterator[tuple[str, str, ModelStats]]:
    for name, model in engine.ready_versions():
        yield name, model.version_str, model.stats


def render(
    engine: Engine,
    allow_cpu_metrics: bool = True,
    gpu: GpuMetrics | None = None,
    config: MetricsConfig | None = None,
    system: SystemReadings | None = None,
) -> str:
    """The whole exposition, in Prometheus text format 0.0.4.

    ``system`` holds the CPU/GPU readings of the last ``--metrics-interval-ms`` poll; without it
    they are read now.
    """
    config = config or MetricsConfig()
    lines: list[str] = []
    versions = list(_versions(engine))
    for name, kind, help_text, value in _MODEL_FAMILIES:
        if not config.counter_latencies and name in _LATENCY_COUNTERS:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for model, version, stats in versions:
            if value is None:  # failures, one series per reason
                for reason in FAILURE_REASONS:
                    labels = _labels({"model": model, "reason": reason, "version": version})
                    lines.append(f"{name}{labels} {stats.failures.get(reason, 0)}")
            else:
                lines.append(f"{name}{_labels({'model': model, 'version': version})} {_number(value(stats))}")
    cache = getattr(engine, "cache", None)
    if cache is not None:
        lines += _cache_lines(engine, cache, config.counter_latencies)
    elif config.counter_latencies:
        lines += _cache_model_lines(engine)
    lines += _load_time_lines(engine)
    lines += _restart_lines(versions)
    lines += [
        "# HELP nv_pinned_memory_pool_total_bytes Pinned memory pool total memory size, in bytes",
        "# TYPE nv_pinned_memory_pool_total_bytes gauge",
        "nv_pinned_memory_pool_total_bytes 0",
        "# HELP nv_pinned_memory_pool_used_bytes Pinned memory pool used memory size, in bytes",
        "# TYPE nv_pinned_memory_pool_used_bytes gauge",
        "nv_pinned_memory_pool_used_bytes 0",
    ]
    if system is not None:
        gpu_rows = system.current().gpu_rows
        cpu = system.cpu if allow_cpu_metrics else None
    else:
        gpu_rows = gpu.readings() if gpu is not None and gpu.available else []
        cpu = (cpu_utilization(), *cpu_memory()) if allow_cpu_metrics else None
    if gpu_rows:
        for family, help_text in GPU_FAMILIES:
            lines += [f"# HELP {family} {help_text}", f"# TYPE {family} gauge"]
            for row in gpu_rows:
                lines.append(f"{family}{_labels({'gpu_uuid': row['gpu_uuid']})} {_number(row[family])}")
    if cpu is not None:
        utilization, total, used = cpu
        lines += [
            "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]",
            "# TYPE nv_cpu_utilization gauge",
            f"nv_cpu_utilization {_number(utilization)}",
            "# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_total_bytes gauge",
            f"nv_cpu_memory_total_bytes {total}",
            "# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_used_bytes gauge",
            f"nv_cpu_memory_used_bytes {used}",
        ]
    lines += _summary_lines(versions)
    lines += _histogram_lines(versions)
    lines += CUSTOM_METRICS.render()  # the models' own (pb_utils.MetricFamily)
    return "\n".join(lines) + "\n"


def _load_time_lines(engine: Engine) -> list[str]:
    """``nv_model_load_duration_secs``: how long each ready version took to load (newer Triton releases)."""
    models = list(engine.ready_versions())
    if not models:
        return []
    lines = ["# HELP nv_model_load_duration_secs Model load time in seconds",
             "# TYPE nv_model_load_duration_secs gauge"]  # fmt: skip
    for name, model in models:
        labels = _labels({"model": name, "version": model.version_str})
        lines.append(f"nv_model_load_duration_secs{labels} {_number(model.load_seconds)}")
    return lines


def _restart_lines(versions: list[tuple[str, str, ModelStats]]) -> list[str]:
    """``nv_model_instance_restarts``: instances started again after they hung or died (tritonlite's own)."""
    if not versions:
        return []
    lines = ["# HELP nv_model_instance_restarts Number of model instances restarted after they hung or died",
             "# TYPE nv_model_instance_restarts counter"]  # fmt: skip
    for model, version, stats in versions:
        labels = _labels({"model": model, "version": version})
        lines.append(f"nv_model_instance_restarts{labels} {stats.instance_restarts}")
    return lines


def _histogram_lines(versions: list[tuple[str, str, ModelStats]]) -> list[str]:
    """The first-response histograms (histogram_latencies=true, decoupled models), as prometheus-cpp writes them."""
    series = [(m, v, s.first_response) for m, v, s in versions if s.first_response is not None]
    if not series:
        return []
    family = FIRST_RESPONSE_FAMILY
    lines = [f"# HELP {family} {FIRST_RESPONSE_HELP}", f"# TYPE {family} histogram"]
    for model, version, histogram in series:
        labels = _labels({"model": model, "version": version})
        lines.append(f"{family}_count{labels} {histogram.count}")
        lines.append(f"{family}_sum{labels} {_number(histogram.sum)}")
        for bound, seen in histogram.cumulative():
            le = "+Inf" if bound == float("inf") else _number(bound)
            lines.append(f"{family}_bucket{_labels({'model': model, 'version': version, 'le': le})} {seen}")
    return lines


_CACHE_MODEL_FAMILIES = [
    ("nv_cache_num_hits_per_model", "Number of cache hits per model", lambda s: s.cache_hit.count),
    ("nv_cache_hit_duration_per_model", "Total cache hit duration per model, in microseconds",
     lambda s: s.cache_hit.ns // 1000),
    ("nv_cache_num_misses_per_model", "Number of cache misses per model", lambda s: s.cache_miss.count),
    ("nv_cache_miss_duration_per_model", "Total cache miss (insert+lookup) duration per model, in microseconds",
     lambda s: s.cache_miss.ns // 1000),
]  # fmt: skip


def _summary_lines(versions: list[tuple[str, str, ModelStats]]) -> list[str]:
    """The latency summaries (summary_latencies=true); a family without series is not written, as in Triton."""
    lines: list[str] = []
    for key, family, help_text in LATENCY_FAMILIES:
        series = [(m, v, getattr(s.summaries, key)) for m, v, s in versions if s.summaries is not None]
        series = [(m, v, summary) for m, v, summary in series if summary is not None]
        if not series:
            continue
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} summary"]
        for model, version, summary in series:
            labels = _labels({"model": model, "version": version})
            lines.append(f"{family}_count{labels} {summary.count}")
            lines.append(f"{family}_sum{labels} {summary.sum}")
            for quantile, value in summary.collect():
                quantile_labels = _labels({"model": model, "version": version, "quantile": _number(quantile)})
                lines.append(f"{family}{quantile_labels} {_number(value)}")
    return lines


def _cache_model_lines(engine: Engine) -> list[str]:
    """Per-model cache counters for every version whose config enables the response cache; as in Triton,
    also without a server cache (then they stay 0), and no family at all without such a model."""
    cached = []
    for name, model in engine.ready_versions():
        if model.config is not None and model.config.response_cache.enable:
            cached.append((name, model.version_str, model.stats))
    lines: list[str] = []
    if not cached:
        return lines
    for family, help_text, value in _CACHE_MODEL_FAMILIES:
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} counter"]
        for model, version, stats in cached:
            lines.append(f"{family}{_labels({'model': model, 'version': version})} {value(stats)}")
    return lines


def _cache_lines(engine: Engine, cache, counters: bool = True) -> list[str]:
    lines: list[str] = []
    if counters:
        lines += _cache_model_lines(engine)
    gauges = [
        ("nv_cache_util", "Cache utilization [0.0 - 1.0]", cache.utilization()),
        ("nv_cache_num_entries", "Number of responses stored in response cache", cache.entries),
        ("nv_cache_num_hits", "Number of cache hits in response cache", cache.hits),
        ("nv_cache_num_misses", "Number of cache misses in response cache", cache.misses),
        ("nv_cache_num_lookups", "Number of cache lookups in response cache", cache.lookups),
        ("nv_cache_num_evictions", "Number of cache evictions in response cache", cache.evictions),
        ("nv_cache_lookup_duration", "Total cache lookup duration (hit and miss), in microseconds",
         cache.lookup_ns // 1000),
        ("nv_cache_insertion_duration", "Total cache insertion duration, in microseconds", cache.insertion_ns // 1000),
    ]  # fmt: skip
    for family, help_text, number in gauges:
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} gauge", f"{family} {_number(number)}"]
    return lines


class MetricsApp:
    """ASGI app: GET /metrics renders the exposition; a GET of another path is an empty 200, any other
    method 405, as in Triton.

    ``system`` holds the CPU/GPU readings; the server runs ``system.run()`` beside it so that they
    are refreshed every ``--metrics-interval-ms``.
    """

    def __init__(
        self,
        engine: Engine,
        allow_cpu_metrics: bool = True,
        allow_gpu_metrics: bool = True,
        config: MetricsConfig | None = None,
    ) -> None:
        self.engine = engine
        self.allow_cpu_metrics = allow_cpu_metrics
        self.config = config or MetricsConfig()
        gpu = GpuMetrics() if allow_gpu_metrics else None
        self.system = SystemReadings(allow_cpu_metrics, gpu, self.config.interval_ms)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "GET":  # any path, /metrics too
            await _answer(send, 405, b"text/plain", _METHOD_NOT_ALLOWED)
        elif scope["path"] != "/metrics":
            await _answer(send, 200, b"text/plain; charset=utf-8", b"")
        else:
            body = render(self.engine, self.allow_cpu_metrics, config=self.config, system=self.system).encode()
            await _answer(send, 200, b"text/plain; charset=utf-8", body)


# Triton 2.51's metrics service answers a GET of any other path 200 with an empty text/plain body,
# and any other method, on any path, 405 (reason 'Not Allowed') with this text/plain body
_METHOD_NOT_ALLOWED = b'{"error":"Method Not Allowed"}'


async def _answer(send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_metrics_app(
    engine: Engine,
    allow_cpu_metrics: bool = True,
    allow_gpu_metrics: bool = True,
    config: MetricsConfig | None = None,
) -> MetricsApp:
    return MetricsApp(engine, allow_cpu_metrics, allow_gpu_metrics, config)
