"""Trace settings parsing, update rules and sampling."""

from __future__ import annotations

import json

import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.tracing.settings import TraceSettings, parse_trace_config, parse_update
from tritonlite.tracing.tracer import Tracer


def test_defaults_are_tritons():
    assert TraceSettings().as_json() == {
        "trace_level": ["OFF"], "trace_rate": "1000", "trace_count": "-1", "log_frequency": "0",
        "trace_file": "", "trace_mode": "triton",
    }  # fmt: skip


def test_trace_config_flags():
    settings = parse_trace_config(
        ["triton,file=/tmp/t.json", "level=TIMESTAMPS", "level=TENSORS", "rate=5", "count=3", "log-frequency=2"]
    )
    assert settings.level == ("TIMESTAMPS", "TENSORS") and settings.rate == 5 and settings.count == 3
    assert settings.file == "/tmp/t.json" and settings.log_frequency == 2 and settings.active
    with pytest.raises(ValueError, match="invalid trace level"):
        parse_trace_config(["level=LOUD"])
    with pytest.raises(ValueError, match="unknown trace mode"):
        parse_trace_config(["mode=zipkin"])


@pytest.mark.parametrize(
    ("update", "kind", "message"),
    [
        ({"trace_file": "/x"}, ErrorKind.UNSUPPORTED,
         "trace file location can not be updated through network protocol"),
        ({"trace_rate": "abc"}, ErrorKind.INVALID_ARG, "Unable to parse 'trace_rate', got: abc"),
        ({"trace_level": ["TIMESTAMPS"]}, ErrorKind.INVALID_ARG,
         "Attempting to set invalid trace setting :trace file name is not given"),
    ],
)  # fmt: skip
def test_update_errors_match_triton(update, kind, message):
    with pytest.raises(TritonError) as info:
        parse_update(update, TraceSettings())
    assert (info.value.kind, info.value.message) == (kind, message)


def test_unknown_levels_and_keys_are_ignored():
    assert parse_update({"trace_level": ["LOUD"], "other": 1}, TraceSettings()) == {}
    assert parse_update({"trace_rate": None}, TraceSettings()) == {"rate": None}


def test_rate_and_count_sampling_and_file(tmp_path):
    path = tmp_path / "trace.json"
    tracer = Tracer(TraceSettings(level=("TIMESTAMPS",), rate=2, count=2, file=str(path)))
    sampled = [tracer.start("m") for _ in range(7)]
    traced = [i for i, t in enumerate(sampled) if t is not None]
    assert traced == [0, 2]  # every 2nd request, at most 2 of them
    for trace in filter(None, sampled):
        trace.model("m", "1", "rid")
        trace.stamp("REQUEST_START", 10)
        tracer.finish(trace, "m")
    tracer.flush()
    records = json.loads(path.read_text())
    assert records[0] == {"id": 1, "model_name": "m", "model_version": 1, "request_id": "rid"}
    assert records[1] == {"id": 1, "timestamps": [{"name": "REQUEST_START", "ns": 10}]}
    assert {r["id"] for r in records} == {1, 2}


def test_off_means_nothing_is_sampled():
    tracer = Tracer()
    assert not tracer.active and tracer.start("m") is None
