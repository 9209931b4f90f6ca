"""The metric families Triton exposes, rendered from the engine's counters at scrape time.

Names, HELP texts, types and label names are Triton 2.51's (captured from the reference
server; see tests/reference_data). Counters carry no ``_total`` suffix, as in Triton, so the
exposition is written here rather than through prometheus-client's counter classes, which
would rename them. Nothing is counted on the request path beyond the statistics counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tritonlite.metrics.system import cpu_memory, cpu_utilization
from tritonlite.models.statistics import FAILURE_REASONS, ModelStats

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _versions(engine: Engine) -> Iterator[tuple[str, str, ModelStats]]:
    for name in sorted(engine.models.models):
        entry = engine.models.models[name]
        for number in sorted(entry.versions):
            model = entry.versions[number]
            if model.ready:
                yield name, model.version_str, model.stats


def render(engine: Engine, allow_cpu_metrics: bool = True) -> str:
    """The whole exposition, in Prometheus text format 0.0.4."""
    lines: list[str] = []
    versions = list(_versions(engine))
    for name, kind, help_text, value in _MODEL_FAMILIES:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for model, version, stats in versions:
            if value is None:  # failures, one series per reason
                for reason in FAILURE_REASONS:
                    labels = _labels({"model": model, "reason": reason, "version": version})
                    lines.append(f"{name}{labels} {stats.failures.get(reason, 0)}")
            else:
                lines.append(f"{name}{_labels({'model': model, 'version': version})} {_number(value(stats))}")
    lines += [
        "# HELP nv_pinned_memory_pool_total_bytes Pinned memory pool total memory size, in bytes",
        "# TYPE nv_pinned_memory_pool_total_bytes gauge",
        "nv_pinned_memory_pool_total_bytes 0",
        "# HELP nv_pinned_memory_pool_used_bytes Pinned memory pool used memory size, in bytes",
        "# TYPE nv_pinned_memory_pool_used_bytes gauge",
        "nv_pinned_memory_pool_used_bytes 0",
    ]
    if allow_cpu_metrics:
        total, used = cpu_memory()
        lines += [
            "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]",
            "# TYPE nv_cpu_utilization gauge",
            f"nv_cpu_utilization {_number(cpu_utilization())}",
            "# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_total_bytes gauge",
            f"nv_cpu_memory_total_bytes {total}",
            "# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_used_bytes gauge",
            f"nv_cpu_memory_used_bytes {used}",
        ]
    return "\n".join(lines) + "\n"


def build_metrics_app(engine: Engine, allow_cpu_metrics: bool = True):
    """ASGI app: GET /metrics renders the exposition; anything else is 404."""

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = render(engine, allow_cpu_metrics).encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
