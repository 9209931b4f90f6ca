"""Runs the engine and its frontends until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from tritonlite import TRITON_COMPATIBLE_VERSION, __version__
from tritonlite.core.errors import TritonError
from tritonlite.engine import Engine, EngineOptions
from tritonlite.frontends.access import Restrictions
from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.http.exchange import DEFAULT_MAX_INPUT_SIZE, InferEndpoint
from tritonlite.frontends.http.protocol import HttpConfig
from tritonlite.frontends.http.restricted import infer_check, restrict_api
from tritonlite.frontends.http.routes import build_api
from tritonlite.frontends.tls import GrpcTls, HttpTls
from tritonlite.logging_setup import table
from tritonlite.metrics.config import MetricsConfig
from tritonlite.tracing.settings import TraceSettings

log = logging.getLogger("tritonlite")


@dataclass
class ServerOptions:
    repositories: list[str | Path]  # folders, or cloud URLs (s3://, gs://, as://)
    server_id: str = "triton"
    allow_http: bool = True
    http_address: str = "0.0.0.0"
    http_port: int = 8000
    http_max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    allow_grpc: bool = True
    grpc_address: str = "0.0.0.0"
    grpc_port: int = 8001
    http_restrictions: Restrictions = field(default_factory=Restrictions)
    grpc_restrictions: Restrictions = field(default_factory=Restrictions)
    grpc_tls: GrpcTls = field(default_factory=GrpcTls)
    grpc_channel: GrpcChannelOptions = field(default_factory=GrpcChannelOptions)
    http_tls: HttpTls = field(default_factory=HttpTls)
    allow_metrics: bool = True
    allow_cpu_metrics: bool = True
    allow_gpu_metrics: bool = True
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8002
    strict_model_config: bool = False
    strict_readiness: bool = True
    exit_timeout_secs: float = 30.0
    execute_timeout_secs: float = 0.0  # --model-execute-timeout-secs: the watchdog's limit (0: none)
    exit_on_error: bool = True
    rate_limit: str = "off"
    rate_limit_resources: list[str] = field(default_factory=list)
    backend_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    trace_settings: TraceSettings = field(default_factory=TraceSettings)
    model_control_mode: str = "none"
    load_models: list[str] = field(default_factory=list)
    poll_seconds: float = 15.0
    load_threads: int = 4
    cache_bytes: int | None = None
    metrics_config: MetricsConfig = field(default_factory=MetricsConfig)
    cpu_fallback_for_gpu_instances: bool = False
    allow_symlinks_outside_repository: bool = False
    model_config_name: str = ""
    status_page: bool = True  # GET / on the HTTP port
    allow_openai: bool = True  # the OpenAI routes: on the HTTP port and on their own port
    openai_address: str = "0.0.0.0"
    openai_port: int | None = None  # None: 9000, left closed with a warning when it is busy
    tokenizer: Path | None = None  # --tokenizer: the tokenizer folder of models that name none
    extra: dict = field(default_factory=dict)


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the tritonlite server owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Poller:
    """Stands beside the uvicorn servers in the shutdown list: stopping it cancels its task."""

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task

    @property
    def should_exit(self) -> bool:
        return self.task.done()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self.task.cancel()


class StartupError(RuntimeError):
    pass


def uvicorn_options(host: str, port: int) -> dict:
    return {
        "host": host,
        "port": port,
        "loop": "none",
        "lifespan": "off",
        "access_log": False,
        "proxy_headers": False,  # Triton reads no X-Forwarded-* headers; one middleware layer less per request
        "log_level": "warning",
        "timeout_keep_alive": 75,
        "server_header": False,  # Triton's responses carry neither Server nor Date
        "date_header": False,
    }


async def _start_uvicorn(config: uvicorn.Config, what: str) -> tuple[_UvicornServer, asyncio.Task]:
    server = _UvicornServer(config)

    async def serve_until_done() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits the process when it cannot bind; report it instead
            pass

    task = asyncio.ensure_future(serve_until_done())
    while not server.started:
        if task.done():
            raise StartupError(f"failed to start {what} at {config.host}:{config.port} (is the port in use?)")
        await asyncio.sleep(0.01)
    return server, task


def _resource_row(spec: str) -> str:
    """A --rate-limit-resource as Triton's options table shows it."""
    from tritonlite.scheduling.rate_limiter import parse_resource_spec

    name, count, device = parse_resource_spec(spec)
    return f'{{"name":"{name}", "count":{count} "device":{device}}}'


def _model_table(engine: Engine) -> str:
    rows = []
    for row in engine.models.index():
        if "state" not in row:
            continue  # explicit mode: a model of the repository that is not loaded
        status = row["state"] if not row.get("reason") else f"{row['state']}: {row['reason']}"
        rows.append([row["name"], row.get("version", ""), status])
    return table(["Model", "Version", "Status"], rows)


DEFAULT_OPENAI_PORT = 9000


def _openai_router(engine: Engine, options: ServerOptions):
    """The OpenAI routes (one router, so both ports share its tokenizers)."""
    from tritonlite.frontends.openai.routes import OpenAISettings, build_router

    if options.tokenizer is not None and not options.tokenizer.is_dir():
        raise StartupError(f"--tokenizer: '{options.tokenizer}' is not a folder")
    return build_router(engine, OpenAISettings(options.tokenizer, options.http_max_input_size))


def _with_openai(api, router):
    if router is not None:
        api.include_router(router)
    return api


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _start_openai(router, options: ServerOptions) -> list[tuple[_UvicornServer, asyncio.Task]]:
    """The OpenAI port. At the default port, a busy port is a warning: the routes are on the HTTP port too."""
    from tritonlite.frontends.openai.routes import build_openai_app

    port = DEFAULT_OPENAI_PORT if options.openai_port is None else options.openai_port
    if options.openai_port is None and not _port_free(options.openai_address, port):
        log.warning(
            "OpenAI frontend not started: %s:%d is in use (the OpenAI routes answer on the HTTP port; "
            "--openai-port=PORT picks another port, --allow-openai=false turns them off)",
            options.openai_address, port,
        )  # fmt: skip
        return []
    app = restrict_api(build_openai_app(router), options.http_restrictions)  # no side door past --http-restricted-api
    config = uvicorn.Config(app, **uvicorn_options(options.openai_address, port))
    started = await _start_uvicorn(config, "OpenAI frontend")
    log.info("Started OpenAI frontend at %s:%d", options.openai_address, port)
    return [started]


async def serve(options: ServerOptions, stop: asyncio.Event | None = None, *, exit_when_stuck: bool = False) -> int:
    """Load the repository, open the endpoints, serve until stopped. Returns an exit code.

    ``exit_when_stuck``: when the shutdown had to abandon model code still running at the exit
    timeout, end the process here (``os._exit``) instead of returning: the abandoned threads may
    be ones that interpreter exit joins (executor threads), and would keep it alive forever.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    try:
        engine = Engine(
            EngineOptions(
                repositories=options.repositories,
                server_id=options.server_id,
                strict_model_config=options.strict_model_config,
                strict_readiness=options.strict_readiness,
                rate_limit=options.rate_limit,
                rate_limit_resources=options.rate_limit_resources,
                backend_settings=options.backend_settings,
                trace_settings=options.trace_settings,
                model_control_mode=options.model_control_mode,
                load_models=options.load_models,
                poll_seconds=options.poll_seconds,
                load_threads=options.load_threads,
                exit_timeout=options.exit_timeout_secs,
                execute_timeout=options.execute_timeout_secs,
                cache_bytes=options.cache_bytes,
                metrics_config=options.metrics_config,
                cpu_fallback_for_gpu_instances=options.cpu_fallback_for_gpu_instances,
                allow_symlinks_outside_repository=options.allow_symlinks_outside_repository,
                model_config_name=options.model_config_name,
                freeze_heap=True,
            )
        )
    except TritonError as exc:
        flag = "--rate-limit-resource" if options.rate_limit_resources else "--rate-limit"
        print(f'Bad option: "{flag}".\n{exc.message}', file=sys.stderr)  # raw, as Triton prints it
        return 1
    log.info("tritonlite %s (Triton %s compatible)", __version__, TRITON_COMPATIBLE_VERSION)
    for repository in options.repositories:
        if isinstance(repository, Path) and not repository.is_dir():
            log.error("failed to stat file %s: model repository does not exist", repository)
            return 1
    try:
        await engine.start()
    except TritonError as exc:  # a remote repository that cannot be read: no models, no server
        log.error("%s", exc.message)
        await engine.stop()
        print(f"error: creating server: {exc.status_text().replace(': ', ' - ', 1)}", file=sys.stderr)
        return 1
    log.info("\n%s\n", _model_table(engine))
    option_rows = [
        ["server_id", options.server_id],
        ["server_version", TRITON_COMPATIBLE_VERSION],
        ["server_extensions", " ".join(engine.options.extensions)],
        *[[f"model_repository_path[{i}]", str(p)] for i, p in enumerate(options.repositories)],
        ["model_control_mode", f"MODE_{options.model_control_mode.upper()}"],
        ["rate_limit", "OFF" if not engine.limiter.enabled else "EXEC_COUNT"],
        *[
            [f"rate_limit_resource[{i}]", _resource_row(spec)]
            for i, spec in enumerate(options.rate_limit_resources if engine.limiter.enabled else [])
        ],
        ["strict_model_config", str(int(options.strict_model_config))],
        ["model_config_name", options.model_config_name],
        ["strict_readiness", str(int(options.strict_readiness))],
        ["cache_enabled", str(int(bool(options.cache_bytes)))],
        ["exit_timeout", str(int(options.exit_timeout_secs))],
    ]
    log.info("\n%s\n", table(["Option", "Value"], option_rows))
    if options.exit_on_error and not engine.models.all_ready():
        log.error("failed to load all models (start with --exit-on-error=false to serve the others)")
        first = next((row for row in engine.models.index() if row.get("state") == "UNAVAILABLE"), None)
        await engine.stop()
        # Triton's last words, for scripts that read them: the failed --load-model in explicit mode,
        # otherwise the failed repository load as a whole
        if options.model_control_mode == "explicit" and first is not None and "version" in first:
            last_words = (
                f"Invalid argument - load failed for model '{first['name']}': "
                f"version {first['version']} is at UNAVAILABLE state: {first.get('reason', '')};"
            )
        else:
            last_words = "Internal - failed to load all models"
        print(f"error: creating server: {last_words}", file=sys.stderr)
        return 1

    grpc_server = None
    servers: list[tuple[_UvicornServer, asyncio.Task]] = []
    try:
        if options.allow_grpc:
            from tritonlite.frontends.grpc.server import build_server

            address = f"{options.grpc_address}:{options.grpc_port}"
            try:
                tls = options.grpc_tls.ssl_context() if options.grpc_tls.enabled else None
                grpc_server = build_server(
                    engine, address, options.grpc_restrictions, tls, options.grpc_channel
                )
            except Exception as exc:
                raise StartupError(f"failed to start GRPCInferenceService at {address}: {exc}") from None
            await grpc_server.start()
            log.info("Started GRPCInferenceService at %s", address)
        openai_router = None
        if options.allow_openai:
            openai_router = _openai_router(engine, options)
        if options.allow_http:
            try:
                tls = options.http_tls.uvicorn_options()
            except ValueError as exc:
                raise StartupError(f"failed to start HTTPService: {exc}") from None
            restrictions = options.http_restrictions
            config = HttpConfig(
                restrict_api(_with_openai(build_api(engine, options.status_page), openai_router), restrictions),
                InferEndpoint(engine, options.http_max_input_size, guard=infer_check(restrictions)),
                **uvicorn_options(options.http_address, options.http_port),
                **tls,
            )
            servers.append(await _start_uvicorn(config, "HTTPService"))
            log.info("Started HTTPService at %s:%d", options.http_address, options.http_port)
        if openai_router is not None:
            servers.extend(await _start_openai(openai_router, options))
        if options.allow_metrics:
            from tritonlite.metrics.families import build_metrics_app

            metrics = build_metrics_app(
                engine, options.allow_cpu_metrics, options.allow_gpu_metrics, options.metrics_config
            )
            config = uvicorn.Config(metrics, **uvicorn_options(options.metrics_address, options.metrics_port))
            servers.append(await _start_uvicorn(config, "Metrics Service"))
            poll = asyncio.ensure_future(metrics.system.run())
            servers.append((_Poller(poll), poll))
            log.info("Started Metrics Service at %s:%d", options.metrics_address, options.metrics_port)
    except StartupError as exc:
        log.error("%s", exc)
        await _shutdown(engine, grpc_server, servers, options.exit_timeout_secs)
        return 1

    engine.freeze_heap()  # the models and endpoints are up: later collections skip their objects
    await stop.wait()
    log.info("Received a stop signal, shutting down")
    if exit_when_stuck:
        _start_backstop(options.exit_timeout_secs + BACKSTOP_MARGIN_S)
    try:
        clean = await _shutdown(engine, grpc_server, servers, options.exit_timeout_secs)
    except Exception:
        log.exception("shutdown did not complete cleanly")
        return 1
    if clean:
        return 0
    # Triton's last words when its exit timeout expires (and its exit status)
    log.error("failed to stop server: Internal - Exit timeout expired. Exiting immediately.")
    if exit_when_stuck:
        _exit_now(1)
    return 1


# After the exit timeout: how long the abandoned requests' errors may take to reach their clients,
# and the idle instances to finalize.
SHUTDOWN_GRACE_S = 1.0


async def _shutdown(engine: Engine, grpc_server, servers, timeout: float) -> bool:
    """Stop as Triton does: no new requests; those in flight get until ``timeout`` to finish; then
    the instances still executing are abandoned (their requests answered with an error, process
    instances killed) and the models unloaded. Returns False when work had to be abandoned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    engine.accepting = False
    for server, _ in servers:
        server.should_exit = True
    stopping = [task for _, task in servers]
    if grpc_server is not None:  # RPCs still running at the grace's end are cancelled
        stopping.append(asyncio.ensure_future(grpc_server.stop(grace=timeout + SHUTDOWN_GRACE_S)))
    clean = await engine.models.wait_idle(timeout)
    if not clean:
        abandoned = engine.models.abandon_busy()
        log.error("exit timeout expired: %d model instance(s) still executing are abandoned", abandoned)
        await engine.models.wait_idle(SHUTDOWN_GRACE_S)
    # the frontends end once their last answers are out
    left = max(deadline - loop.time(), 0.0) + SHUTDOWN_GRACE_S
    if stopping:
        _, late = await asyncio.wait(stopping, timeout=left)
        for task in late:
            task.cancel()
    clean = await engine.stop(max(deadline - loop.time(), SHUTDOWN_GRACE_S)) and clean
    log.info("tritonlite stopped")
    return clean


# The shutdown ends by itself within the exit timeout and about two grace periods; past this margin
# something blocks the event loop (model code run inline, say) and the backstop ends the process.
BACKSTOP_MARGIN_S = 5.0


def _start_backstop(seconds: float) -> None:
    """End the process with status 1 after ``seconds``, from a thread of its own, whatever the loop does."""

    def backstop() -> None:
        log.error("failed to stop server: Internal - Exit timeout expired. Exiting immediately.")
        _exit_now(1)

    timer = threading.Timer(seconds, backstop)
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> None:
    """End the process at once, its output flushed (no interpreter shutdown: see ``serve``)."""
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run(options: ServerOptions) -> int:
    import os

    from tritonlite.allocator import tune_allocator
    from tritonlite.heap import tune_collector

    tune_allocator()
    tune_collector()

    try:
        import uvloop

        if os.environ.get("TRITONLITE_LOOP") == "asyncio":
            raise ImportError
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(serve(options, exit_when_stuck=True))
    return uvloop.run(serve(options, exit_when_stuck=True))
