"""One HTTP/2 connection to a ``GrpcServer`` seen frame by frame with a raw h2 client
(transport/connection.py): what is refused before a call starts, streams reset mid-call, server-side
deadlines, keepalive pings, gRPC's ping-abuse policy and the connection's maximum age."""

from __future__ import annotations

import asyncio
import time

import h2.errors
import h2.events
import pytest
from transport_testkit import WAIT, BaseHandlers, RawClient, serving

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport.call import Method
from tritonlite.frontends.grpc.transport.framing import frame

GOAWAY = 0x7
RST_STREAM = 0x3
HEADERS = 0x1


class Handlers(BaseHandlers):
    def __init__(self) -> None:
        self.calls = 0
        super().__init__()

    def methods(self) -> dict[str, Method]:
        return {
            "/test.T/Echo": Method(self.echo, streaming=False),
            "/test.T/Slow": Method(self.slow, streaming=False),
            "/test.T/StreamEcho": Method(self.stream_echo, streaming=True),
        }

    async def echo(self, request: bytes, call) -> bytes:
        self.calls += 1
        return request

    async def stream_echo(self, requests, call):
        self.started.set()
        try:
            async for request in requests:
                yield request
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
def handlers():
    return Handlers()


@pytest.fixture
def served(handlers):
    with serving(handlers.methods()) as served:
        yield served


def goaway(event) -> bool:
    return isinstance(event, h2.events.ConnectionTerminated)


def ping_from_server(event) -> bool:
    return isinstance(event, h2.events.PingReceived)


# -- what is refused before a call starts ---------------------------------------------------------


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/json", b"", b"application/grp"])
def test_a_wrong_content_type_is_415(served, handlers, content_type):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"hi"], content_type=content_type)
        head, body, _ = client.response(stream)
        assert head[b":status"] == b"415"
        assert head[b"grpc-status"] == b"2"  # UNKNOWN, as gRPC core says
        assert body == b""
        # the connection serves the next call
        stream = client.request("/test.T/Echo", [b"next"])
        head, body, trailers = client.response(stream)
        assert (head[b":status"], body, trailers[b"grpc-status"]) == (b"200", frame(b"next"), b"0")
    assert handlers.calls == 1


@pytest.mark.parametrize("content_type", [b"application/grpc", b"application/grpc+proto"])
def test_grpc_content_types_are_served(served, content_type):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"hi"], content_type=content_type)
        head, body, trailers = client.response(stream)
    assert (head[b":status"], body, trailers[b"grpc-status"]) == (b"200", frame(b"hi"), b"0")


def test_an_unknown_method_is_unimplemented_trailers_only(served):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Missing", [b"hi"])
        head, body, trailers = client.response(stream)
    assert head[b":status"] == b"200"
    assert head[b"grpc-status"] == b"12"
    assert b"grpc-message" not in head
    assert (body, trailers) == (b"", {})


def test_an_unsupported_request_encoding_is_unimplemented(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"hi"], extra=[(b"grpc-encoding", b"snappy")])
        head, _, _ = client.response(stream)
    assert head[b"grpc-status"] == b"12"
    assert b"snappy" in head[b"grpc-message"]
    assert handlers.calls == 0


def test_identity_request_encoding_is_plain(served):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"hi"], extra=[(b"grpc-encoding", b"identity")])
        _, body, trailers = client.response(stream)
    assert (body, trailers[b"grpc-status"]) == (frame(b"hi"), b"0")


def test_a_unary_call_without_a_request_message_fails_without_running_the_handler(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [])
        head, _, trailers = client.response(stream)
    status = head.get(b"grpc-status", trailers.get(b"grpc-status"))
    assert status not in (None, b"0")
    assert handlers.calls == 0


def test_a_unary_call_with_two_request_messages_fails_without_running_the_handler(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"one", b"two"])
        client.stream_done(stream)
        head, _, trailers = client.response(stream)
    status = head.get(b"grpc-status", trailers.get(b"grpc-status"))
    assert status not in (None, b"0")
    assert handlers.calls == 0


def test_a_request_cut_short_by_end_stream_fails(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", end=False)
        client.h2.send_data(stream, frame(b"whole message")[:-3], end_stream=True)
        client.flush()
        head, _, trailers = client.response(stream)
    assert head.get(b"grpc-status", trailers.get(b"grpc-status")) == b"13"
    assert handlers.calls == 0


def test_metadata_headers_and_several_calls_on_one_connection(served):
    with RawClient(served.port) as client:
        streams = [client.request("/test.T/Echo", [b"%d" % index]) for index in range(10)]
        for index, stream in enumerate(streams):
            _, body, trailers = client.response(stream)
            assert (body, trailers[b"grpc-status"]) == (frame(b"%d" % index), b"0")


# -- streams reset mid-call ---------------------------------------------------------------------


def test_a_reset_stream_cancels_its_handler_and_the_connection_goes_on(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"5"])
        assert handlers.started.wait(WAIT)
        client.reset(stream)
        assert handlers.cancelled.wait(WAIT)
        stream = client.request("/test.T/Echo", [b"after the reset"])
        _, body, trailers = client.response(stream)
        assert (body, trailers[b"grpc-status"]) == (frame(b"after the reset"), b"0")
        assert not any(
            isinstance(event, (h2.events.ResponseReceived, h2.events.DataReceived)) and event.stream_id == 1
            for event in client.events
        )


def test_a_reset_stream_mid_request_does_not_break_the_connection(served, handlers):
    """The stream is reset after half its request message: nothing of it reaches a handler."""
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", end=False)
        client.h2.send_data(stream, frame(b"half of a message")[:8])
        client.flush()
        client.reset(stream)
        stream = client.request("/test.T/Echo", [b"whole"])
        _, body, trailers = client.response(stream)
        assert (body, trailers[b"grpc-status"]) == (frame(b"whole"), b"0")
    assert handlers.calls == 1


def test_a_reset_streaming_call_cancels_its_handler(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/StreamEcho", [b"one"], end=False)
        client.wait_for(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
        client.reset(stream)
        assert handlers.cancelled.wait(WAIT)
        stream = client.request("/test.T/StreamEcho", [b"a", b"b"])
        _, body, trailers = client.response(stream)
        assert (body, trailers[b"grpc-status"]) == (frame(b"a") + frame(b"b"), b"0")


def test_a_reset_in_the_read_that_brought_the_request(served, handlers):
    """HEADERS, DATA, END_STREAM and RST_STREAM in one write: the handler's wait must still end."""
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"5"], send=False)
        client.h2.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        assert handlers.started.wait(WAIT)
        stream = client.request("/test.T/Echo", [b"next"])
        _, body, _ = client.response(stream)
        assert body == frame(b"next")
    assert handlers.cancelled.wait(1.0), "the handler was never cancelled: it sleeps on after its call ended"


def test_a_closed_connection_cancels_its_calls(served, handlers):
    client = RawClient(served.port)
    client.request("/test.T/Slow", [b"5"])
    assert handlers.started.wait(WAIT)
    client.close()
    assert handlers.cancelled.wait(WAIT)


# -- deadlines --------------------------------------------------------------------------------


def test_the_server_ends_a_call_at_its_grpc_timeout(served, handlers):
    """The client never cancels: the server's own deadline ends the call and cancels the handler."""
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"5"], extra=[(b"grpc-timeout", b"100m")])
        head, _, trailers = client.response(stream)
    status = head.get(b"grpc-status", trailers.get(b"grpc-status"))
    assert status == b"4"
    assert handlers.cancelled.is_set() or handlers.cancelled.wait(WAIT)


def test_the_server_ends_a_streaming_call_at_its_grpc_timeout(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/StreamEcho", [b"one"], end=False, extra=[(b"grpc-timeout", b"150m")])
        _, body, trailers = client.response(stream)
    assert body == frame(b"one")
    assert trailers[b"grpc-status"] == b"4"
    assert handlers.cancelled.wait(WAIT)


def test_a_deadline_while_the_request_is_still_coming(served, handlers):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", end=False, extra=[(b"grpc-timeout", b"100m")])
        head, _, trailers = client.response(stream)
    assert head.get(b"grpc-status", trailers.get(b"grpc-status")) == b"4"
    assert handlers.calls == 0


def test_a_junk_grpc_timeout_means_no_deadline(served):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"0.05"], extra=[(b"grpc-timeout", b"soon")])
        _, body, trailers = client.response(stream)
    assert (body, trailers[b"grpc-status"]) == (frame(b"slept"), b"0")


# -- keepalive ------------------------------------------------------------------------------------


def keepalive(time_ms: int = 100, timeout_ms: int = 200, permit: bool = True) -> GrpcChannelOptions:
    return GrpcChannelOptions(
        keepalive_time_ms=time_ms, keepalive_timeout_ms=timeout_ms, keepalive_permit_without_calls=permit
    )


def test_keepalive_pings_an_idle_client_when_permitted(handlers):
    with serving(handlers.methods(), keepalive()) as served, RawClient(served.port) as client:
        client.wait_for(ping_from_server, timeout=1.0)
        # a client that answers keeps its connection: several keepalive periods later it is still open
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            client.read_once(deadline - time.monotonic())
        assert not client.eof
        assert not any(goaway(event) for event in client.events)
        assert sum(ping_from_server(event) for event in client.events) >= 2
        stream = client.request("/test.T/Echo", [b"alive"])
        assert client.response(stream)[1] == frame(b"alive")


def test_keepalive_closes_a_connection_whose_client_does_not_answer(handlers):
    with serving(handlers.methods(), keepalive(timeout_ms=100)) as served:
        with RawClient(served.port, answer=False) as client:
            client.wait_for(ping_from_server, timeout=1.0)
            client.wait_eof(timeout=1.0)


def test_keepalive_without_permission_leaves_an_idle_connection_alone(handlers):
    with serving(handlers.methods(), keepalive(time_ms=50, permit=False)) as served:
        with RawClient(served.port, answer=False) as client:
            deadline = time.monotonic() + 0.4
            while time.monotonic() < deadline and not client.eof:
                client.read_once(deadline - time.monotonic())
            assert not any(ping_from_server(event) for event in client.events)
            assert not client.eof


def test_keepalive_without_permission_pings_during_a_call(handlers):
    with serving(handlers.methods(), keepalive(time_ms=50, permit=False)) as served:
        with RawClient(served.port) as client:
            stream = client.request("/test.T/Slow", [b"0.5"])
            client.wait_for(ping_from_server, timeout=1.0)
            _, body, _ = client.response(stream)
            assert body == frame(b"slept")


# -- ping abuse -----------------------------------------------------------------------------------


def test_pings_back_to_back_get_goaway_too_many_pings(served):
    """Defaults: an idle connection may ping once per two hours; the third strike past two ends it."""
    with RawClient(served.port) as client:
        for index in range(5):
            client.ping(b"ping%04d" % index, send=False)
        client.flush()
        ended = client.wait_for(goaway, timeout=2.0)
        assert ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM == 11
        assert ended.additional_data == b"too_many_pings"
        client.wait_eof(timeout=2.0)


def test_two_strikes_are_forgiven(served):
    with RawClient(served.port) as client:
        for index in range(3):  # the first ping is free, then two strikes
            client.ping(b"ping%04d" % index, send=False)
        client.flush()
        acks = 0
        while acks < 3:
            since = len(client.events)
            client.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived), since=since)
            acks = sum(isinstance(e, h2.events.PingAckReceived) for e in client.events)
        stream = client.request("/test.T/Echo", [b"still here"])
        assert client.response(stream)[1] == frame(b"still here")
        assert not any(goaway(event) for event in client.events)


def test_pings_each_after_its_ack_get_goaway_too_many_pings(served):
    """A client that waits for each PING ACK before the next ping is abusive just the same."""
    with RawClient(served.port) as client:
        for index in range(6):
            if client.terminated:
                break
            since = len(client.events)
            client.ping(b"ping%04d" % index)
            client.wait_for(
                lambda e: isinstance(e, (h2.events.PingAckReceived, h2.events.ConnectionTerminated)), since=since
            )
        ended = client.wait_for(goaway, timeout=1.0)
        assert ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert ended.additional_data == b"too_many_pings"


def test_pings_during_a_call_within_the_interval_are_allowed_when_it_is_long(handlers):
    """With a call open the interval is http2_min_recv_ping_interval_without_data_ms: set to 0, any rate."""
    channel = GrpcChannelOptions(http2_min_recv_ping_interval_without_data_ms=0)
    with serving(handlers.methods(), channel) as served, RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"0.3"])
        assert handlers.started.wait(WAIT)
        for index in range(10):
            client.ping(b"ping%04d" % index, send=False)
        client.flush()
        _, body, _ = client.response(stream)
        assert body == frame(b"slept")
        assert not any(goaway(event) for event in client.events)


# -- connection age -------------------------------------------------------------------------------


def test_max_connection_age_sends_goaway_and_closes_an_idle_connection(handlers):
    channel = GrpcChannelOptions(max_connection_age_ms=200)
    with serving(handlers.methods(), channel) as served, RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"young"])
        assert client.response(stream)[1] == frame(b"young")
        ended = client.wait_for(goaway, timeout=2.0)
        assert ended.error_code == h2.errors.ErrorCodes.NO_ERROR
        assert ended.last_stream_id == stream
        client.wait_eof(timeout=1.0)


def test_max_connection_age_grace_ends_a_call_that_runs_on(handlers):
    channel = GrpcChannelOptions(max_connection_age_ms=200, max_connection_age_grace_ms=200)
    with serving(handlers.methods(), channel) as served, RawClient(served.port) as client:
        stream = client.request("/test.T/Slow", [b"5"])
        ended = client.wait_for(goaway, timeout=2.0)
        assert ended.error_code == h2.errors.ErrorCodes.NO_ERROR
        assert ended.last_stream_id == stream
        assert not client.eof
        client.wait_eof(timeout=2.0)
        assert handlers.cancelled.wait(WAIT)


def test_max_connection_age_lets_a_call_finish_within_the_grace(handlers):
    channel = GrpcChannelOptions(max_connection_age_ms=100, max_connection_age_grace_ms=2000)
    with serving(handlers.methods(), channel) as served, RawClient(served.port) as client:
        client.request("/test.T/Slow", [b"0.4"])
        client.wait_for(goaway, timeout=2.0)
        client.wait_eof(timeout=2.0)  # closed once the call is done, long before the grace runs out
        assert handlers.finished.is_set()
        assert not handlers.cancelled.is_set()
        # the answer came before the close: HEADERS then DATA then trailers, after the GOAWAY
        assert [kind for kind, _, stream in client.frames_after_goaway() if stream == 1][:1] == [HEADERS]


def test_a_stream_opened_after_goaway_is_not_served(handlers):
    channel = GrpcChannelOptions(max_connection_age_ms=100, max_connection_age_grace_ms=2000)
    with serving(handlers.methods(), channel) as served, RawClient(served.port) as client:
        client.request("/test.T/Slow", [b"0.5"])  # keeps the connection open past its age
        ended = client.wait_for(goaway, timeout=2.0)
        assert ended.last_stream_id == 1
        late = client.send_raw_request("/test.T/Echo", b"late")
        client.wait_eof(timeout=3.0)
        assert handlers.calls == 0
        assert all(kind != HEADERS for kind, _, stream in client.frames_after_goaway() if stream == late)
