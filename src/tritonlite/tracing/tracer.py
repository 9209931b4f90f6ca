"""Sampling requests for tracing and writing the records Triton writes.

Records are Triton's: ``{"id": N, "model_name", "model_version", "request_id"}`` once per
trace and ``{"id": N, "timestamps": [{"name": "REQUEST_START", "ns": ...}]}`` per point, in a
JSON array written to the trace file every ``log_frequency`` traces and when the server stops.
With every level OFF the request path pays one attribute check.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

from tritonlite.tracing.settings import TraceConfig, TraceSettings


class Trace:
    """The timestamps (and tensors) of one sampled request."""

    __slots__ = ("id", "records", "tensors")

    def __init__(self, trace_id: int, tensors: bool) -> None:
        self.id = trace_id
        self.records: list[dict] = []
        self.tensors = tensors

    def stamp(self, name: str, ns: int | None = None) -> None:
        self.records.append({"id": self.id, "timestamps": [{"name": name, "ns": ns or time.monotonic_ns()}]})

    def model(self, name: str, version: str, request_id: str) -> None:
        self.records.append(
            {"id": self.id, "model_name": name, "model_version": int(version), "request_id": request_id}
        )

    def tensor(self, activity: str, name: str, datatype: str, shape: list[int], data) -> None:
        if not self.tensors:
            return
        flat = ",".join(str(v) for v in getattr(data, "reshape", lambda *_: [data])(-1).tolist())
        self.records.append(
            {"id": self.id, "activity": activity,
             "tensor": {"name": name, "data": flat, "shape": ",".join(map(str, shape)), "dtype": datatype}}
        )  # fmt: skip


class Tracer:
    """Decides which requests to trace and collects their records."""

    def __init__(self, settings: TraceSettings | None = None) -> None:
        self.config = TraceConfig(settings or TraceSettings())
        self._ids = itertools.count(1)
        self._seen: dict[str, int] = {}
        self._remaining: dict[str, int] = {}
        self._pending: list[dict] = []
        self._finished = 0
        self._lock = threading.Lock()
        self._written: set[str] = set()
        self.active = self.config.base.active or bool(self.config.overrides)
        self._otel = None  # tracing.otel.OtelExporter in opentelemetry mode
        base = self.config.base
        if base.mode == "opentelemetry":
            from tritonlite.tracing.otel import OtelExporter

            self._otel = OtelExporter(base.otel_url, dict(base.otel_resource), dict(base.otel_bsp))

    def refresh(self) -> None:
        self.active = self.config.base.active or any(self.config.effective(m).active for m in self.config.overrides)
        self._remaining.clear()

    def start(self, model: str) -> Trace | None:
        """A new trace for this request, or None when it is not sampled."""
        settings = self.config.effective(model)
        if not settings.active:
            return None
        seen = self._seen.get(model, 0) + 1
        self._seen[model] = seen
        if settings.rate <= 0 or seen % settings.rate != 1 % settings.rate:
            return None
        if settings.count > 0:
            left = self._remaining.get(model, settings.count)
            if left <= 0:
                return None
            self._remaining[model] = left - 1
        return Trace(next(self._ids), "TENSORS" in settings.level)

    def finish(self, trace: Trace, model: str) -> None:
        settings = self.config.effective(model)
        if settings.mode == "opentelemetry" and self._otel is not None:
            self._otel.export(trace.records)
            return
        with self._lock:
            self._pending.extend(trace.records)
            self._finished += 1
            if settings.log_frequency > 0 and self._finished % settings.log_frequency == 0:
                self._write(settings.file)

    def flush(self) -> None:
        with self._lock:
            self._write(self.config.base.file)
        if self._otel is not None:
            self._otel.shutdown()

    def _write(self, file: str) -> None:
        if not file or not self._pending:
            return
        path = Path(file)
        if file in self._written:  # later batches go to numbered files, as Triton's log_frequency does
            index = len([f for f in self._written if f.startswith(file)])
            path = Path(f"{file}.{index}")
        self._written.add(str(path) if str(path) != file else file)
        path.write_text(json.dumps(self._pending))
        self._pending = []


def stamp_compute(requests, start_ns: int, end_ns: int, timings: tuple[int, int, int]) -> None:
    """Compute timestamps of the traced requests of one execution."""
    for request in requests:
        trace = request.trace
        if trace is None:
            continue
        input_ns, _, output_ns = timings
        trace.stamp("COMPUTE_START", start_ns)
        trace.stamp("COMPUTE_INPUT_END", start_ns + input_ns)
        trace.stamp("COMPUTE_OUTPUT_START", end_ns - output_ns)
        trace.stamp("COMPUTE_END", end_ns)
