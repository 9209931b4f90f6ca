"""``GrpcServer`` as a whole (transport/server.py): stopping with and without grace, TLS and mutual TLS
with certificates made for the test, and binding (a taken port fails at construction)."""

from __future__ import annotations

import socket
import ssl
import time

import grpc
import pytest
from transport_testkit import (
    WAIT,
    BaseHandlers,
    LoopThread,
    RawClient,
    TlsFiles,
    free_listening_socket,
    make_tls_files,
    serving,
)

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport.call import Method
from tritonlite.frontends.grpc.transport.server import GrpcServer, bind
from tritonlite.frontends.tls import GrpcTls


class Handlers(BaseHandlers):
    def __init__(self) -> None:
        super().__init__()

    def methods(self) -> dict[str, Method]:
        return {"/test.T/Echo": Method(self.echo, streaming=False), "/test.T/Slow": Method(self.slow, streaming=False)}


@pytest.fixture
def handlers():
    return Handlers()


def refused(port: int) -> bool:
    """Whether a TCP connection to the port is refused (nothing listens there)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
            return False
    except ConnectionRefusedError:
        return True


# -- stop -----------------------------------------------------------------------------------------


def test_stop_with_grace_lets_a_call_in_flight_finish(handlers):
    with serving(handlers.methods()) as served, grpc.insecure_channel(served.address) as channel:
        slow = channel.unary_unary("/test.T/Slow")
        future = slow.future(b"0.3", timeout=WAIT)
        assert handlers.started.wait(WAIT)
        served.stop(grace=2)
        assert handlers.finished.is_set()  # stop waited for it
        assert future.result(timeout=WAIT) == b"slept"
        assert not handlers.cancelled.is_set()
        assert refused(served.port)


def test_no_new_connection_after_stop(handlers):
    with serving(handlers.methods()) as served:
        with grpc.insecure_channel(served.address) as channel:
            assert channel.unary_unary("/test.T/Echo")(b"before", timeout=WAIT) == b"before"
        served.stop(grace=1)
        assert refused(served.port)
        with grpc.insecure_channel(served.address) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary("/test.T/Echo")(b"after", timeout=1)
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_stop_when_the_grace_runs_out_ends_the_call(handlers):
    with serving(handlers.methods()) as served, grpc.insecure_channel(served.address) as channel:
        future = channel.unary_unary("/test.T/Slow").future(b"10", timeout=30)
        assert handlers.started.wait(WAIT)
        begun = time.monotonic()
        served.stop(grace=0.2, timeout=3)  # returns, or the run's timeout fails the test
        assert time.monotonic() - begun < 3
        assert handlers.cancelled.wait(WAIT)
        with pytest.raises(grpc.RpcError) as caught:
            future.result(timeout=WAIT)  # an error, not a hang
        assert caught.value.code() != grpc.StatusCode.OK
        assert not handlers.finished.is_set()


def test_stop_without_grace_ends_calls_at_once(handlers):
    with serving(handlers.methods()) as served, grpc.insecure_channel(served.address) as channel:
        future = channel.unary_unary("/test.T/Slow").future(b"10", timeout=30)
        assert handlers.started.wait(WAIT)
        served.stop(grace=None, timeout=2)
        assert handlers.cancelled.wait(WAIT)
        with pytest.raises(grpc.RpcError):
            future.result(timeout=WAIT)


def test_stop_sends_goaway_and_closes_an_idle_connection(handlers):
    with serving(handlers.methods()) as served, RawClient(served.port) as client:
        stream = client.request("/test.T/Echo", [b"hello"])
        client.response(stream)
        served.stop(grace=2)
        goaway = client.wait_for(lambda e: type(e).__name__ == "ConnectionTerminated", timeout=2)
        assert goaway.error_code == 0
        assert goaway.last_stream_id == stream
        client.wait_eof(timeout=2)


def test_stop_with_no_connections(handlers):
    with serving(handlers.methods()) as served:
        served.stop(grace=5, timeout=2)  # nothing to wait for: stop returns without using the grace
        assert refused(served.port)


def test_stop_of_a_server_never_started_releases_its_port(handlers):
    loop = LoopThread()
    try:
        server = GrpcServer(handlers.methods(), "127.0.0.1:0")
        port = server.port
        try:
            loop.run(server.stop(grace=None))
            assert refused(port)
        finally:
            server._socket.close()  # what stop should have done (a no-op once it does)
    finally:
        loop.close()


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("transport_tls"))


def server_tls(tls: TlsFiles, mutual: bool = False) -> ssl.SSLContext:
    return GrpcTls(
        use_ssl=True, mutual=mutual, server_cert=str(tls.server_cert), server_key=str(tls.server_key),
        root_cert=str(tls.ca) if mutual else "",
    ).ssl_context()  # fmt: skip


def client_credentials(tls: TlsFiles, with_certificate: bool) -> grpc.ChannelCredentials:
    if not with_certificate:
        return grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(), private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )  # fmt: skip


def test_tls_serves_a_client_that_trusts_the_server(handlers, tls):
    with serving(handlers.methods(), ssl_context=server_tls(tls)) as served:
        with grpc.secure_channel(served.address, client_credentials(tls, with_certificate=False)) as channel:
            echo = channel.unary_unary("/test.T/Echo")
            assert echo(b"secret", timeout=WAIT) == b"secret"
            assert echo(b"x" * 1_000_000, timeout=WAIT) == b"x" * 1_000_000


def test_tls_negotiates_h2_by_alpn(handlers, tls):
    with serving(handlers.methods(), ssl_context=server_tls(tls)) as served:
        context = ssl.create_default_context(cafile=str(tls.ca))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as conn:
                assert conn.selected_alpn_protocol() == "h2"


def test_tls_refuses_a_plaintext_client(handlers, tls):
    with serving(handlers.methods(), ssl_context=server_tls(tls)) as served:
        with grpc.insecure_channel(served.address) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary("/test.T/Echo")(b"plain", timeout=2)
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_mutual_tls_serves_a_client_with_a_certificate(handlers, tls):
    with serving(handlers.methods(), ssl_context=server_tls(tls, mutual=True)) as served:
        with grpc.secure_channel(served.address, client_credentials(tls, with_certificate=True)) as channel:
            assert channel.unary_unary("/test.T/Echo")(b"mutual", timeout=WAIT) == b"mutual"


def test_mutual_tls_refuses_a_client_without_a_certificate(handlers, tls):
    with serving(handlers.methods(), ssl_context=server_tls(tls, mutual=True)) as served:
        with grpc.secure_channel(served.address, client_credentials(tls, with_certificate=False)) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary("/test.T/Echo")(b"anonymous", timeout=2)
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


# -- binding --------------------------------------------------------------------------------------


def test_a_taken_port_fails_at_construction(handlers):
    taken = free_listening_socket()
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            GrpcServer(handlers.methods(), f"127.0.0.1:{port}")
    finally:
        taken.close()


def test_the_port_is_bound_at_construction(handlers):
    loop = LoopThread()
    try:
        server = GrpcServer(handlers.methods(), "127.0.0.1:0")
        assert server.port > 0
        probe = socket.socket()
        try:
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", server.port))
        finally:
            probe.close()
        loop.run(server.start())
        loop.run(server.stop())
    finally:
        loop.close()


def test_reuse_port_lets_two_servers_share_a_port(handlers):
    channel = GrpcChannelOptions(reuse_port=True)
    first = bind("127.0.0.1:0", reuse_port=True)
    try:
        port = first.getsockname()[1]
        loop = LoopThread()
        try:
            second = GrpcServer(handlers.methods(), f"127.0.0.1:{port}", channel)
            assert second.port == port
            loop.run(second.start())
            loop.run(second.stop())
        finally:
            loop.close()
    finally:
        first.close()


def test_without_reuse_port_a_second_server_on_the_port_fails(handlers):
    with serving(handlers.methods()) as served:
        with pytest.raises(OSError):
            GrpcServer(handlers.methods(), served.address)


@pytest.mark.parametrize("address", ["localhost:0", "127.0.0.1:0", "[::1]:0", "0.0.0.0:0"])
def test_bind_takes_host_and_port_forms(address):
    if address.startswith("[::1]") and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sock = bind(address)
    except OSError as exc:
        if "::1" in address:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        raise
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_bind_refuses_a_bad_address():
    with pytest.raises((OSError, ValueError)):
        bind("127.0.0.1:notaport")
