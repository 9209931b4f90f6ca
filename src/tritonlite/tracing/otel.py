"""``--trace-config mode=opentelemetry``: traces exported as OpenTelemetry spans over OTLP/HTTP.

Spans follow Triton's OpenTelemetry trace format (docs/user_guide/trace.md): one top-level span
``InferRequest`` (the frontend's timestamps as events, e.g. HTTP_RECV_START ... HTTP_SEND_END), a
model span named after the model (REQUEST_START, QUEUE_START, REQUEST_END) and a ``compute`` span
(COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END), each with the attributes
``triton.model_name``, ``triton.model_version``, ``triton.trace_id``, ``triton.trace_parent_id``
and ``triton.request_id``. Timestamps are wall-clock nanoseconds, as OpenTelemetry's. Spans go
through a batch span processor (``bsp_*`` settings) to the OTLP/HTTP exporter at ``url``.

Needs the ``otel`` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http), imported
only when this mode is chosen.
"""

from __future__ import annotations

import time

MISSING = (
    "trace mode opentelemetry needs the OpenTelemetry SDK and its OTLP/HTTP exporter: "
    "pip install 'tritonlite[otel]' (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http)"
)
DEFAULT_URL = "http://localhost:4318/v1/traces"
DEFAULT_RESOURCE = {"service.name": "triton-inference-server"}
MODEL_POINTS = ("REQUEST_START", "QUEUE_START", "REQUEST_END")
COMPUTE_POINTS = ("COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END")


def require() -> None:
    """Raise ValueError with the install hint when the extra is missing."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ValueError(MISSING) from None


class OtelExporter:
    """Turns finished traces into spans and hands them to the batch span processor."""

    def __init__(self, url: str = DEFAULT_URL, resource: dict[str, str] | None = None, bsp: dict | None = None):
        require()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        bsp = bsp or {}
        self.provider = TracerProvider(resource=Resource.create({**DEFAULT_RESOURCE, **(resource or {})}))
        self.provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=url),
                max_queue_size=bsp.get("bsp_max_queue_size", 2048),
                schedule_delay_millis=bsp.get("bsp_schedule_delay", 5000),
                max_export_batch_size=bsp.get("bsp_max_export_batch_size", 512),
            )
        )
        self.tracer = self.provider.get_tracer("tritonlite")
        # trace timestamps are monotonic; OpenTelemetry's are wall clock
        self.offset = time.time_ns() - time.monotonic_ns()

    def export(self, records: list[dict]) -> None:
        """The records of one trace (Trace.records) as its three spans."""
        from opentelemetry.trace import set_span_in_context

        model = next((r for r in records if "model_name" in r), None)
        stamps = [(r["timestamps"][0]["name"], r["timestamps"][0]["ns"] + self.offset) for r in records
                  if "timestamps" in r]  # fmt: skip
        if model is None or not stamps:
            return
        trace_id = model["id"]
        attributes = {
            "triton.model_name": model["model_name"],
            "triton.model_version": int(model["model_version"]),
            "triton.trace_id": trace_id,
            "triton.trace_parent_id": 0,
            "triton.request_id": model.get("request_id", ""),
        }
        at = dict(stamps)
        top = self.tracer.start_span("InferRequest", start_time=stamps[0][1], attributes=attributes)
        model_start = at.get("REQUEST_START", stamps[0][1])
        span = self.tracer.start_span(
            model["model_name"], context=set_span_in_context(top), start_time=model_start, attributes=attributes
        )
        compute = None
        if "COMPUTE_START" in at:
            compute = self.tracer.start_span(
                "compute", context=set_span_in_context(span), start_time=at["COMPUTE_START"], attributes=attributes
            )
        for name, ns in stamps:
            if name in COMPUTE_POINTS and compute is not None:
                compute.add_event(name, timestamp=ns)
            elif name in MODEL_POINTS:
                span.add_event(name, timestamp=ns)
            else:
                top.add_event(name, timestamp=ns)
        if compute is not None:
            compute.end(end_time=at.get("COMPUTE_END", at["COMPUTE_START"]))
        span.end(end_time=at.get("REQUEST_END", stamps[-1][1]))
        top.end(end_time=stamps[-1][1])

    def shutdown(self) -> None:
        """Export what is queued (the server is stopping)."""
        self.provider.shutdown()
