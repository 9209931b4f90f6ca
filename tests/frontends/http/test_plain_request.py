"""frontends.http.plain_request: which request heads are read without httptools, and what of them."""

from __future__ import annotations

import pytest

from tritonlite.frontends.http.exchange import InferHeaders
from tritonlite.frontends.http.plain_request import PlainRequestReader, parse_head
from tritonlite.frontends.http.targets import InferTarget, InferTargets

# the head perf_analyzer (libcurl) sends, byte for byte
PERF_HEAD = (
    b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: libcurl-agent/1.0\r\n"
    b"Accept: */*\r\nInference-Header-Content-Length: 180\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 2228"
)


def test_perf_analyzers_head_is_taken():
    head = parse_head(PERF_HEAD, InferTargets())
    assert head.target == InferTarget("mlp", "")
    assert head.content_length == 2228 and head.keep_alive
    assert head.headers == InferHeaders(header_length=180, content_length=2228)


def test_a_versioned_path_compression_and_connection_options_are_taken():
    rest = PERF_HEAD.split(b"\r\n", 1)[1]
    head = parse_head(
        b"POST /v2/models/m/versions/3/infer HTTP/1.1\r\nConnection: close\r\nAccept-Encoding: gzip\r\n"
        b"Content-Encoding: deflate\r\n" + rest,
        InferTargets(),
    )
    assert head.target == InferTarget("m", "3") and not head.keep_alive
    assert head.headers == InferHeaders(180, b"deflate", b"gzip", content_length=2228)


@pytest.mark.parametrize(
    "change",
    [
        (b"POST /v2/models/mlp/infer HTTP/1.1", b"GET /v2/models/mlp/infer HTTP/1.1"),
        (b"HTTP/1.1", b"HTTP/1.0"),
        (b"/mlp/infer", b"/mlp/infer?x=1"),
        (b"/mlp/infer", b"/ml%70/infer"),
        (b"/mlp/infer", b"/mlp/ready"),
        (b"/mlp/infer", b"/mlp/versions/x/infer"),
        (b"Accept: */*", b"Expect: 100-continue"),
        (b"Accept: */*", b"Transfer-Encoding: chunked"),
        (b"Accept: */*", b"Upgrade: websocket"),
        (b"Accept: */*", b"Connection: upgrade"),
        (b"Accept: */*", b"Content-Length: 2228"),  # twice
        (b"Accept: */*", b"Accept */*"),
        (b"Accept: */*", b"Accept : */*"),
        (b"Accept: */*", b" Accept: */*"),
        (b"Accept: */*", b"Accept: \x01"),
        (b"Content-Length: 2228", b"Content-Length: 22x8"),
        (b"Content-Length: 2228", b"Content-Length: -1"),
        (b"Inference-Header-Content-Length: 180", b"X-Other: 180"),
    ],
)
def test_anything_else_is_left_to_httptools(change):
    old, new = change
    assert old in PERF_HEAD
    assert parse_head(PERF_HEAD.replace(old, new, 1), InferTargets()) is None


def test_a_head_without_content_length_is_left():
    assert parse_head(PERF_HEAD.rsplit(b"\r\n", 1)[0], InferTargets()) is None


def test_only_exactly_one_whole_request_is_read():
    reader = PlainRequestReader(InferTargets())
    body = b"x" * 2228
    whole = PERF_HEAD + b"\r\n\r\n" + body
    assert reader.read(whole[:-1]) is None  # the body's last byte has not come
    assert reader.read(whole + b"POST") is None  # a pipelined request behind it
    head = reader.read(whole)
    assert head.target == InferTarget("mlp", "") and head.content_length == len(body)
    assert reader.read(whole) is head and reader.taken == 2  # the head was parsed once
