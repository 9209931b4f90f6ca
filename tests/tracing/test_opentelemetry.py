"""--trace-config mode=opentelemetry: spans reach a real OTLP/HTTP receiver (an http.server on loopback
that parses ExportTraceServiceRequest), with Triton's span names, attributes, events and timestamps."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer

from tritonlite.tracing.settings import parse_trace_config

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")


class Receiver:
    """POST /v1/traces -> the spans, with their resource attributes."""

    def __init__(self) -> None:
        self.spans: list = []
        self.resources: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.resources.append(attributes)
                            receiver.spans.append(span)
                answer = trace_service.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.spans

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(span) -> dict:
    out = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


def add_sub(client, module, request_id: str) -> None:
    a = np.ones(4, np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    client.infer("add_sub", inputs, request_id=request_id)


def test_settings_parse_as_triton():
    settings = parse_trace_config(
        ["mode=opentelemetry", "opentelemetry,url=http://collector:4318/v1/traces",
         "opentelemetry,resource=service.name=tl", "opentelemetry,resource=service.version=1",
         "opentelemetry,bsp_schedule_delay=100", "level=TIMESTAMPS"]
    )  # fmt: skip
    assert settings.mode == "opentelemetry" and settings.otel_url == "http://collector:4318/v1/traces"
    assert settings.otel_resource == (("service.name", "tl"), ("service.version", "1"))
    assert settings.otel_bsp == (("bsp_schedule_delay", 100),)
    assert settings.as_json()["trace_mode"] == "opentelemetry" and "otel_url" not in settings.as_json()
    with pytest.raises(ValueError, match="unknown opentelemetry trace setting"):
        parse_trace_config(["opentelemetry,colour=blue"])


def test_missing_extra_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_otel(name, *args, **kwargs):
        if name.startswith("opentelemetry"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with pytest.raises(ValueError, match=r"pip install 'tritonlite\[otel\]'"):
        parse_trace_config(["mode=opentelemetry"])


def test_spans_reach_an_otlp_http_receiver():
    receiver = Receiver()
    server = RunningServer(
        [EXAMPLES], "--trace-config=mode=opentelemetry", "--trace-config=level=TIMESTAMPS", "--trace-config=rate=1",
        f"--trace-config=opentelemetry,url=http://127.0.0.1:{receiver.port}/v1/traces",
        "--trace-config=opentelemetry,resource=service.name=tritonlite-test",
        "--trace-config=opentelemetry,bsp_schedule_delay=100",
    )  # fmt: skip
    try:
        started = time.time_ns()
        add_sub(httpclient.InferenceServerClient(server.http), httpclient, "h1")
        add_sub(grpcclient.InferenceServerClient(server.grpc), grpcclient, "g1")
        ended = time.time_ns()
        spans = receiver.wait_for(6)
    finally:
        server.stop()
        receiver.close()
    assert len(spans) == 6, server.log()
    assert set(receiver.paths) == {"/v1/traces"}
    assert all(r["service.name"] == "tritonlite-test" for r in receiver.resources)
    by_id = {span.span_id: span for span in spans}
    tops = [span for span in spans if span.name == "InferRequest"]
    assert len(tops) == 2 and all(not span.parent_span_id for span in tops)
    for top in tops:
        model = next(s for s in spans if s.parent_span_id == top.span_id)
        compute = next(s for s in spans if s.parent_span_id == model.span_id)
        assert (model.name, compute.name) == ("add_sub", "compute")
        assert model.trace_id == compute.trace_id == top.trace_id
        assert attributes(model)["triton.model_name"] == "add_sub" and attributes(model)["triton.model_version"] == 1
        assert attributes(model)["triton.request_id"] in ("h1", "g1")
        assert [e.name for e in model.events] == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
        assert [e.name for e in compute.events] == [
            "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END"]  # fmt: skip
        front = [e.name for e in top.events]
        assert front[0] in ("HTTP_RECV_START", "GRPC_WAITREAD_START")
        assert front[-1] in ("HTTP_SEND_END", "GRPC_SEND_END")
        # wall-clock nanoseconds, nested and in order
        assert started <= top.start_time_unix_nano <= model.start_time_unix_nano <= compute.start_time_unix_nano
        assert compute.end_time_unix_nano <= model.end_time_unix_nano <= top.end_time_unix_nano <= ended
        for span in (top, model, compute):
            times = [e.time_unix_nano for e in span.events]
            assert times == sorted(times) and span.start_time_unix_nano <= times[0]
    assert {attributes(by_id[s.parent_span_id])["triton.request_id"] for s in spans if s.name == "compute"} == {
        "h1", "g1"}  # fmt: skip
