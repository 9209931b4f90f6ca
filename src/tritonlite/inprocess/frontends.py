"""HTTP and gRPC endpoints on an in-process server, opened as Triton's ``tritonfrontend`` package
opens them: ``KServeHttp(server, KServeHttp.Options(port=8000)).start()``, or as a context manager.

They are tritonlite's own frontends, served on the engine's event loop (no thread of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from tritonlite.engine import Engine
from tritonlite.inprocess.errors import InvalidArgumentError, UnavailableError
from tritonlite.inprocess.runtime import Runtime, Service
from tritonlite.inprocess.server import Server


class _Frontend(ABC):
    """A frontend of one started in-process server, opened by ``start`` until ``stop``."""

    def __init__(self, server: Server, options: Any) -> None:
        self._runtime: Runtime = server._started()
        self.options = options
        self._service: Service | None = None

    @abstractmethod
    def _service_for(self) -> Service: ...

    def start(self) -> None:
        if self._service is not None:
            raise InvalidArgumentError("the frontend is started already")
        service = self._service_for()
        self._runtime.open_service(service)
        self._service = service

    def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            self._runtime.close_service(service)

    def __enter__(self) -> _Frontend:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _HttpService(Service):
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self._server: Any = None
        self._task: asyncio.Future | None = None

    async def open(self, engine: Engine) -> None:
        import uvicorn  # noqa: PLC0415 - the HTTP stack is imported by those who open it

        from tritonlite.frontends.http.exchange import InferEndpoint  # noqa: PLC0415
        from tritonlite.frontends.http.protocol import HttpConfig  # noqa: PLC0415
        from tritonlite.frontends.http.routes import build_api  # noqa: PLC0415
        from tritonlite.server import uvicorn_options  # noqa: PLC0415 - the CLI server's uvicorn settings

        config = HttpConfig(build_api(engine), InferEndpoint(engine), **uvicorn_options(self.address, self.port))
        server = uvicorn.Server(config)  # off the main thread it installs no signal handlers

        async def serve() -> None:
            with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind: reported below
                await server.serve()

        task = asyncio.ensure_future(serve())
        while not server.started:
            if task.done():
                raise UnavailableError(
                    f"failed to start HTTPService at {self.address}:{self.port} (is the port in use?)"
                )
            await asyncio.sleep(0.01)
        self._server, self._task = server, task

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task


class _GrpcService(Service):
    def __init__(self, address: str, port: int) -> None:
        self.address = f"{address}:{port}"
        self._server: Any = None

    async def open(self, engine: Engine) -> None:
        from tritonlite.frontends.grpc.server import build_server  # noqa: PLC0415

        try:
            server = build_server(engine, self.address)
        except OSError as exc:  # the address cannot be bound
            raise UnavailableError(f"failed to start GRPCInferenceService at {self.address}: {exc}") from None
        await server.start()
        self._server = server

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1.0)


class KServeHttp(_Frontend):
    """The KServe v2 HTTP endpoint (``tritonfrontend.KServeHttp``)."""

    @dataclass
    class Options:
        address: str = "0.0.0.0"
        port: int = 8000

    def __init__(self, server: Server, options: KServeHttp.Options | None = None) -> None:
        super().__init__(server, options if options is not None else KServeHttp.Options())

    def _service_for(self) -> Service:
        return _HttpService(self.options.address, self.options.port)


class KServeGrpc(_Frontend):
    """The KServe v2 gRPC endpoint (``tritonfrontend.KServeGrpc``)."""

    @dataclass
    class Options:
        address: str = "0.0.0.0"
        port: int = 8001

    def __init__(self, server: Server, options: KServeGrpc.Options | None = None) -> None:
        super().__init__(server, options if options is not None else KServeGrpc.Options())

    def _service_for(self) -> Service:
        return _GrpcService(self.options.address, self.options.port)
