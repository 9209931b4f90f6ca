"""Calls through a real ``GrpcServer`` (transport/server.py, connection.py, call.py) with the real grpc
client: unary and streaming handlers, status codes and texts, deadlines and cancellation reaching the
handler, compression both ways, the message size limit, flow control and concurrent calls."""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import h2.events
import pytest
from google.protobuf import wrappers_pb2
from transport_testkit import WAIT, BaseHandlers, RawClient, serving

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport.call import Method
from tritonlite.frontends.grpc.transport.framing import frame

UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
ABORT_TEXT = "no such model \u00e9%"


class Handlers(BaseHandlers):
    """The toy service; what the handlers saw is kept for the test (threading.Events: the test waits
    in its own thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []
        self.yielded = 0
        self.arrived = 0
        self.all_arrived: asyncio.Event | None = None

    def methods(self) -> dict[str, Method]:
        unary = {
            "Echo": self.echo, "LaterEcho": self.later_echo, "Abort": self.abort, "Slow": self.slow,
            "Raise": self.raise_, "Metadata": self.metadata, "Remaining": self.remaining, "Record": self.record,
            "Gather": self.gather,
        }  # fmt: skip
        streaming = {"StreamEcho": self.stream_echo, "Flood": self.flood, "AbortAfterTwo": self.abort_after_two}
        # Echo and StreamEcho take the server's response compression (as the infer methods do), the rest not
        compressed = {"Echo", "StreamEcho"}
        methods = {
            f"/test.T/{name}": Method(handler, streaming=False, compressed=name in compressed)
            for name, handler in unary.items()
        }
        methods.update(
            {
                f"/test.T/{name}": Method(handler, streaming=True, compressed=name in compressed)
                for name, handler in streaming.items()
            }
        )
        methods["/test.T/PlainEcho"] = Method(self.echo, streaming=False)
        methods["/test.T/Upper"] = Method(
            self.upper, streaming=False, decode=wrappers_pb2.StringValue.FromString,
            encode=wrappers_pb2.StringValue.SerializeToString,
        )  # fmt: skip
        methods["/test.T/StreamUpper"] = Method(
            self.stream_upper, streaming=True, decode=wrappers_pb2.StringValue.FromString,
            encode=wrappers_pb2.StringValue.SerializeToString,
        )  # fmt: skip
        methods["/test.T/BadAnswer"] = Method(
            self.echo, streaming=False, encode=wrappers_pb2.StringValue.SerializeToString
        )  # bytes are no StringValue: its answer does not serialize
        return methods

    async def later_echo(self, request: bytes, call) -> bytes:
        await asyncio.sleep(0.01)
        return request

    async def abort(self, request: bytes, call) -> bytes:
        await call.abort(grpc.StatusCode.NOT_FOUND, ABORT_TEXT)

    async def raise_(self, request: bytes, call) -> bytes:
        raise ValueError("handler broke")

    async def metadata(self, request: bytes, call) -> bytes:
        self.seen.append(call.invocation_metadata())
        return b"ok"

    async def remaining(self, request: bytes, call) -> bytes:
        self.seen.append(call.time_remaining())
        return b"ok"

    async def record(self, request: bytes, call) -> bytes:
        self.seen.append((call.reader.encoding, request))
        return b"got %d" % len(request)

    async def gather(self, request: bytes, call) -> bytes:
        """Answers once 32 calls are in at once."""
        if self.all_arrived is None:
            self.all_arrived = asyncio.Event()
        self.arrived += 1
        if self.arrived == 32:
            self.all_arrived.set()
        await asyncio.wait_for(self.all_arrived.wait(), WAIT)
        return bytes(request)[::-1]

    async def upper(self, request, call):
        return wrappers_pb2.StringValue(value=request.value.upper())

    async def stream_echo(self, requests, call):
        async for request in requests:
            yield request

    async def stream_upper(self, requests, call):
        async for request in requests:
            yield wrappers_pb2.StringValue(value=request.value.upper())

    async def flood(self, requests, call):
        async for _ in requests:
            pass
        for index in range(1000):
            self.yielded = index + 1
            yield index.to_bytes(4, "big") * (64 * 1024 // 4)
        self.finished.set()

    async def abort_after_two(self, requests, call):
        yield b"first"
        yield b"second"
        await call.abort(grpc.StatusCode.PERMISSION_DENIED, "two is all")


@pytest.fixture
def handlers():
    return Handlers()


@pytest.fixture
def served(handlers):
    with serving(handlers.methods()) as served:
        yield served


@pytest.fixture
def channel(served):
    with grpc.insecure_channel(served.address, options=UNLIMITED) as channel:
        yield channel


def unary(channel: grpc.Channel, name: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/test.T/{name}")


def streaming(channel: grpc.Channel, name: str) -> grpc.StreamStreamMultiCallable:
    return channel.stream_stream(f"/test.T/{name}")


# -- unary --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 100_000, 16 * 1024 * 1024])
@pytest.mark.parametrize("method", ["Echo", "LaterEcho"])
def test_unary_echo(channel, method, size):
    payload = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    assert unary(channel, method)(payload, timeout=WAIT) == payload


def test_unary_echo_many_calls_on_one_channel(channel):
    echo = unary(channel, "Echo")
    for index in range(50):
        assert echo(b"call %d" % index, timeout=WAIT) == b"call %d" % index


def test_unknown_method_is_unimplemented_with_no_text(channel):
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/test.T/Nope")(b"x", timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not caught.value.details()


def test_abort_gives_the_code_and_exactly_the_text(channel):
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Abort")(b"", timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == ABORT_TEXT


def test_abort_in_the_grpc_aio_client(served):
    async def main():
        async with grpc.aio.insecure_channel(served.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/test.T/Abort")(b"", timeout=WAIT)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert caught.value.details() == ABORT_TEXT
            assert await channel.unary_unary("/test.T/LaterEcho")(b"aio", timeout=WAIT) == b"aio"

    asyncio.run(main())


def test_an_exception_in_the_handler_is_unknown(channel):
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Raise")(b"", timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert "handler broke" in caught.value.details()
    assert unary(channel, "Echo")(b"still serving", timeout=WAIT) == b"still serving"


def test_decode_and_encode_turn_messages_into_objects(channel):
    request = wrappers_pb2.StringValue(value="triton").SerializeToString()
    answer = unary(channel, "Upper")(request, timeout=WAIT)
    assert wrappers_pb2.StringValue.FromString(answer).value == "TRITON"


def test_an_answer_that_does_not_serialize_ends_the_call(channel):
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "BadAnswer")(b"x", timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert unary(channel, "Echo")(b"still serving", timeout=WAIT) == b"still serving"


def test_a_request_that_does_not_decode_is_internal(channel):
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Upper")(b"\xff\xff\xff\xff", timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "Exception deserializing request!"


def test_a_stream_request_that_does_not_decode_is_internal(channel):
    """The first request is answered; the second does not parse and ends the call."""
    answered = threading.Event()

    def requests():
        yield wrappers_pb2.StringValue(value="a").SerializeToString()
        answered.wait(WAIT)
        yield b"\xff\xff\xff"

    responses = streaming(channel, "StreamUpper")(requests(), timeout=WAIT)
    assert wrappers_pb2.StringValue.FromString(next(responses)).value == "A"
    answered.set()
    with pytest.raises(grpc.RpcError) as caught:
        next(responses)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "Exception deserializing request!"


def test_a_first_stream_request_that_does_not_decode_is_internal(channel):
    responses = streaming(channel, "StreamUpper")(iter([b"\xff\xff\xff"]), timeout=WAIT)
    with pytest.raises(grpc.RpcError) as caught:
        next(responses)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "Exception deserializing request!"


def test_metadata_reaches_the_handler(channel, handlers):
    metadata = (("x-model", "add_sub"), ("x-blob-bin", b"\x00\x01\xfe"))
    assert unary(channel, "Metadata")(b"", metadata=metadata, timeout=WAIT) == b"ok"
    [seen] = handlers.seen
    assert ("x-model", "add_sub") in seen
    assert ("x-blob-bin", b"\x00\x01\xfe") in seen
    names = {name for name, _ in seen}
    assert not names & {"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"}
    assert not any(name.startswith(":") for name in names)


def test_time_remaining_follows_the_deadline(channel, handlers):
    unary(channel, "Remaining")(b"", timeout=3)
    unary(channel, "Remaining")(b"")
    with_deadline, without = handlers.seen
    assert 1.0 < with_deadline <= 3.1  # grpc-timeout is rounded up to its unit
    assert without is None


# -- deadlines and cancellation -----------------------------------------------------------------


def test_deadline_exceeded_cancels_the_handler(channel, handlers):
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Slow")(b"5", timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert handlers.cancelled.wait(WAIT)
    assert not handlers.finished.is_set()
    assert unary(channel, "Echo")(b"after", timeout=WAIT) == b"after"


def test_client_cancellation_reaches_the_handler(channel, handlers):
    future = unary(channel, "Slow").future(b"5", timeout=WAIT * 2)
    assert handlers.started.wait(WAIT)
    assert future.cancel()
    assert handlers.cancelled.wait(WAIT)
    assert future.cancelled()
    assert unary(channel, "Echo")(b"after", timeout=WAIT) == b"after"


def test_client_cancellation_of_a_stream_reaches_the_handler():
    seen = threading.Event()
    began = threading.Event()

    async def endless(requests, call):
        began.set()
        try:
            async for request in requests:
                yield request
        except asyncio.CancelledError:
            seen.set()
            raise

    with serving({"/test.T/Endless": Method(endless, streaming=True)}) as other:
        with grpc.insecure_channel(other.address) as channel:
            calls = threading.Event()

            def requests():
                yield b"one"
                calls.wait(WAIT)

            responses = channel.stream_stream("/test.T/Endless")(requests(), timeout=WAIT * 2)
            assert next(responses) == b"one"
            assert began.is_set()
            responses.cancel()
            calls.set()
            assert seen.wait(WAIT)


# -- compression --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compression", "encoding"), [(grpc.Compression.Gzip, "gzip"), (grpc.Compression.Deflate, "deflate")]
)
def test_compressed_requests_reach_the_handler_inflated(served, handlers, compression, encoding):
    payload = b"a compressible request " * 1000
    with grpc.insecure_channel(served.address, compression=compression) as channel:
        assert unary(channel, "Record")(payload, timeout=WAIT) == b"got %d" % len(payload)
    assert handlers.seen == [(encoding, payload)]


def test_compressed_stream_requests_reach_the_handler_inflated(served):
    payloads = [b"message %d " % index * 100 for index in range(20)]
    with grpc.insecure_channel(served.address, compression=grpc.Compression.Gzip) as channel:
        assert list(streaming(channel, "StreamEcho")(iter(payloads), timeout=WAIT)) == payloads


@pytest.fixture
def compressing(handlers):
    with serving(handlers.methods(), GrpcChannelOptions(response_compression="high")) as served:
        yield served


@pytest.mark.parametrize("size", [0, 10, 1_000_000])
def test_response_compression_gives_the_client_the_right_bytes(compressing, size):
    payload = b"response " * (size // 9)
    with grpc.insecure_channel(compressing.address, options=UNLIMITED) as channel:
        assert unary(channel, "Echo")(payload, timeout=WAIT) == payload
        assert list(streaming(channel, "StreamEcho")(iter([payload, payload]), timeout=WAIT)) == [payload, payload]


def test_response_compression_is_gzip_on_the_wire(compressing):
    payload = b"compress me " * 1000
    with RawClient(compressing.port) as client:
        stream = client.request("/test.T/Echo", [payload], extra=[(b"grpc-accept-encoding", b"identity,gzip")])
        head, body, trailers = client.response(stream)
    assert head[b":status"] == b"200"
    assert head[b"grpc-encoding"] == b"gzip"
    assert trailers[b"grpc-status"] == b"0"
    assert body[0] == 1  # the compressed flag
    assert int.from_bytes(body[1:5], "big") == len(body) - 5 < len(payload)
    assert zlib.decompress(body[5:], wbits=31) == payload


@pytest.mark.parametrize("accept", [None, b"identity", b"deflate", b"identity,deflate"])
def test_response_compression_is_off_for_a_client_that_does_not_accept_gzip(compressing, accept):
    extra = [] if accept is None else [(b"grpc-accept-encoding", accept)]
    with RawClient(compressing.port) as client:
        stream = client.request("/test.T/Echo", [b"plain please"], extra=extra)
        head, body, trailers = client.response(stream)
    assert b"grpc-encoding" not in head
    assert body == frame(b"plain please")
    assert trailers[b"grpc-status"] == b"0"


def test_response_compression_leaves_other_methods_plain(compressing):
    """Triton's --grpc-infer-response-compression-level is for the infer methods alone."""
    with RawClient(compressing.port) as client:
        stream = client.request("/test.T/PlainEcho", [b"x" * 1000], extra=[(b"grpc-accept-encoding", b"gzip")])
        head, body, trailers = client.response(stream)
    assert b"grpc-encoding" not in head
    assert body == frame(b"x" * 1000)
    assert trailers[b"grpc-status"] == b"0"


def test_without_response_compression_responses_are_plain(served):
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"x" * 1000], extra=[(b"grpc-accept-encoding", b"gzip")])
        head, body, _ = client.response(stream)
    assert b"grpc-encoding" not in head
    assert body == frame(b"x" * 1000)


# -- the message size limit ---------------------------------------------------------------------


@pytest.fixture
def limited(handlers):
    with serving(handlers.methods(), max_message_bytes=1000) as served:
        yield served


def test_a_request_over_the_limit_is_resource_exhausted(limited):
    with grpc.insecure_channel(limited.address) as channel:
        assert unary(channel, "Echo")(b"x" * 1000, timeout=WAIT) == b"x" * 1000
        with pytest.raises(grpc.RpcError) as caught:
            unary(channel, "Echo")(b"x" * 2000, timeout=WAIT)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert unary(channel, "Echo")(b"fine", timeout=WAIT) == b"fine"


def test_a_compressed_request_that_inflates_over_the_limit_is_resource_exhausted(limited):
    with grpc.insecure_channel(limited.address, compression=grpc.Compression.Gzip) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            unary(channel, "Echo")(b"\x00" * 100_000, timeout=WAIT)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_stream_message_over_the_limit_is_resource_exhausted(limited):
    with grpc.insecure_channel(limited.address) as channel:
        answered = threading.Event()

        def requests():
            yield b"small"
            answered.wait(WAIT)
            yield b"y" * 2000

        responses = streaming(channel, "StreamEcho")(requests(), timeout=WAIT)
        assert next(responses) == b"small"
        answered.set()
        with pytest.raises(grpc.RpcError) as caught:
            next(responses)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- streaming ----------------------------------------------------------------------------------


def test_bidirectional_echo_keeps_the_order(channel):
    requests = [b"message %d" % index for index in range(200)]
    assert list(streaming(channel, "StreamEcho")(iter(requests), timeout=WAIT)) == requests


def test_bidirectional_echo_in_lockstep(channel):
    """Each response comes before the next request is sent: the handler answers as requests arrive."""
    answered = []
    sent = threading.Event()
    queue: list[bytes] = []

    def requests():
        for index in range(20):
            queue.append(b"ping %d" % index)
            yield queue[-1]
            sent.wait(WAIT)
            sent.clear()

    for response in streaming(channel, "StreamEcho")(requests(), timeout=WAIT):
        answered.append(response)
        assert response == queue[-1]
        sent.set()
    assert answered == [b"ping %d" % index for index in range(20)]


def test_an_empty_stream_ends_ok(channel):
    responses = streaming(channel, "StreamEcho")(iter([]), timeout=WAIT)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_a_slow_reader_gets_every_response_in_order(channel, handlers):
    """1000 x 64 kB: far more than the client's windows, so the handler waits on flow control."""
    responses = streaming(channel, "Flood")(iter([b"go"]), timeout=WAIT * 3)
    first = next(responses)
    time.sleep(0.3)  # the client reads nothing for a while
    assert handlers.yielded < 1000  # the handler was held back, not buffered without bound
    assert not handlers.finished.is_set()
    got = [first, *responses]
    assert len(got) == 1000
    for index, message in enumerate(got):
        assert message == index.to_bytes(4, "big") * (64 * 1024 // 4), index
    assert handlers.finished.is_set()


def test_a_stream_that_aborts_after_two_responses(channel):
    responses = streaming(channel, "AbortAfterTwo")(iter([]), timeout=WAIT)
    assert next(responses) == b"first"
    assert next(responses) == b"second"
    with pytest.raises(grpc.RpcError) as caught:
        next(responses)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == "two is all"


def test_streaming_in_the_grpc_aio_client(served):
    async def main():
        async with grpc.aio.insecure_channel(served.address) as channel:
            call = channel.stream_stream("/test.T/StreamEcho")(timeout=WAIT)
            for index in range(10):
                await call.write(b"aio %d" % index)
                assert await call.read() == b"aio %d" % index
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK

    asyncio.run(main())


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_unary_calls_on_one_channel(channel):
    """32 calls in flight at once (each handler waits until all 32 are in), each answered with its own."""
    gather = unary(channel, "Gather")
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda index: gather(b"request %02d" % index, timeout=WAIT * 2), range(32)))
    assert answers == [(b"request %02d" % index)[::-1] for index in range(32)]


def test_concurrent_mixed_calls_on_one_channel(channel):
    echo, later, stream = unary(channel, "Echo"), unary(channel, "LaterEcho"), streaming(channel, "StreamEcho")

    def one(index: int) -> bool:
        payload = b"%d" % index * (index + 1)
        if index % 3 == 0:
            return echo(payload, timeout=WAIT) == payload
        if index % 3 == 1:
            return later(payload, timeout=WAIT) == payload
        return list(stream(iter([payload] * 3), timeout=WAIT)) == [payload] * 3

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(60)))


def test_a_raw_unary_call_is_a_head_one_message_and_ok_trailers(served):
    """The same echo by hand: head, one length-prefixed message, then the OK trailers."""
    with RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"by hand"])
        head, body, trailers = client.response(stream)
    assert head[b":status"] == b"200"
    assert head[b"content-type"] == b"application/grpc"
    assert body == frame(b"by hand")
    assert trailers == {b"grpc-status": b"0"}
    assert any(isinstance(e, h2.events.TrailersReceived) for e in client.events)
