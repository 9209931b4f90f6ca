"""The gRPC server: a listening socket whose connections are ``GrpcConnection``s."""

from __future__ import annotations

import asyncio
import socket
import ssl

from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.transport.call import Method
from tritonlite.frontends.grpc.transport.connection import GrpcConnection


class GrpcServer:
    """Serves ``methods`` (by path, ``/package.Service/Method``) on ``address`` ("host:port").

    The socket is bound at construction, so that a taken port fails there; ``start`` accepts
    connections, ``stop`` ends them gracefully.
    """

    def __init__(
        self,
        methods: dict[str, Method],
        address: str,
        channel: GrpcChannelOptions | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int = 2**31 - 1,
    ) -> None:
        self.methods = {path.encode(): method for path, method in methods.items()}
        self.channel = channel or GrpcChannelOptions()
        self.compression = self.channel.response_encoding
        self.max_message_bytes = max_message_bytes
        self.connections: set[GrpcConnection] = set()
        self._ssl = ssl_context
        self._socket = bind(address, self.channel.reuse_port)
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: GrpcConnection(self), sock=self._socket, ssl=self._ssl)

    async def stop(self, grace: float | None = None) -> None:
        """Accept no more connections or calls; calls running get ``grace`` seconds, then are reset."""
        if self._server is not None:
            self._server.close()
        else:  # never started: the socket bound at construction is let go
            self._socket.close()
        for connection in list(self.connections):
            connection.go_away()
        if grace:
            deadline = asyncio.get_running_loop().time() + grace
            while any(connection.calls for connection in self.connections):
                if asyncio.get_running_loop().time() >= deadline:
                    break
                await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()


def bind(address: str, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on "host:port" ("[::1]:8001", "0.0.0.0:8001"); OSError when it cannot be."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or None
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
