"""``tritonlite-server``: Triton's command line, for the features tritonlite has."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tritonlite import TRITON_COMPATIBLE_VERSION, __version__
from tritonlite.triton_flags import add_inert_flags, inert_flag_notes, refused_flag


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got '{text}'")


def _bool_flag(parser: argparse._ActionsContainer, name: str, default: bool, help: str) -> None:
    parser.add_argument(name, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tritonlite-server",
        description="A drop-in Python implementation of NVIDIA Triton Inference Server.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"tritonlite {__version__} (Triton {TRITON_COMPATIBLE_VERSION} compatible)",
    )
    parser.add_argument(
        "--model-repository",
        "--model-store",
        action="append",
        dest="model_repository",
        required=True,
        metavar="PATH",
        help="model repository: a folder, s3://[host:port/]bucket/path, gs://bucket/path or "
        "as://account/container/path (repeatable)",
    )
    parser.add_argument("--id", default="triton", help="server identifier reported in server metadata")
    _bool_flag(parser, "--allow-http", True, "serve the HTTP/REST endpoint")
    parser.add_argument("--http-address", default="0.0.0.0")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument(
        "--http-max-input-size", type=int, default=64 * 1024 * 1024, help="largest HTTP request body accepted, in bytes"
    )
    _bool_flag(parser, "--allow-grpc", True, "serve the gRPC endpoint")
    parser.add_argument("--grpc-address", default="0.0.0.0")
    parser.add_argument("--grpc-port", type=int, default=8001)
    _bool_flag(parser, "--allow-openai", True, "serve the OpenAI-compatible routes (/v1/...) on HTTP and --openai-port")
    parser.add_argument("--openai-address", default="0.0.0.0")
    parser.add_argument(
        "--openai-port", type=int, default=None, help="port of the OpenAI-compatible routes alone (default 9000)"
    )
    parser.add_argument(
        "--tokenizer", metavar="FOLDER", help="tokenizer folder (tokenizer.json) of the models that name none"
    )
    restricted_groups = (
        "health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging"
    )
    parser.add_argument(
        "--http-restricted-api",
        action="append",
        default=[],
        metavar="<apis>:<key>=<value>",
        help=f"HTTP requests of these comma-separated apis need header <key> with <value>, or get 403 "
        f"(repeatable). APIs: {restricted_groups}",
    )
    parser.add_argument(
        "--grpc-restricted-protocol",
        action="append",
        default=[],
        metavar="<protocols>:<key>=<value>",
        help=f"gRPC calls of these comma-separated protocols need metadata triton-grpc-protocol-<key> with <value> "
        f"(repeatable). Protocols: {restricted_groups}",
    )
    _bool_flag(parser, "--grpc-use-ssl", False, "serve gRPC over TLS (--grpc-server-cert, --grpc-server-key)")
    _bool_flag(
        parser,
        "--grpc-use-ssl-mutual",
        False,
        "serve gRPC over mutual TLS: clients need a certificate --grpc-root-cert signed",
    )
    parser.add_argument("--grpc-server-cert", default="", metavar="PEM", help="the gRPC server's certificate")
    parser.add_argument("--grpc-server-key", default="", metavar="PEM", help="the gRPC server's private key")
    parser.add_argument("--grpc-root-cert", default="", metavar="PEM", help="CA certificates that sign gRPC clients")
    parser.add_argument(
        "--http-ssl-certfile", default="", metavar="PEM", help="serve HTTPS on the HTTP port with this certificate"
    )
    parser.add_argument("--http-ssl-keyfile", default="", metavar="PEM", help="the HTTPS certificate's private key")
    parser.add_argument(
        "--http-ssl-ca-certs",
        default="",
        metavar="PEM",
        help="HTTPS clients must present a certificate these CAs signed",
    )
    _bool_flag(parser, "--allow-metrics", True, "serve Prometheus metrics")
    parser.add_argument("--metrics-address", default="0.0.0.0")
    _bool_flag(parser, "--allow-cpu-metrics", True, "report CPU utilization and memory metrics")
    _bool_flag(parser, "--allow-gpu-metrics", True, "report GPU metrics through NVML when a GPU is present")
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument(
        "--metrics-config",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="summary_latencies=true, summary_quantiles=Q:E,..., counter_latencies=false, histogram_latencies=true "
        "(repeatable)",
    )
    parser.add_argument(
        "--metrics-interval-ms", default=None, metavar="MS", help="how often CPU/GPU metrics are read (default 2000)"
    )
    _bool_flag(parser, "--strict-model-config", False, "require a complete config.pbtxt (no auto-complete)")
    _bool_flag(parser, "--strict-readiness", True, "server is ready only when every model is ready")
    parser.add_argument("--exit-timeout-secs", type=float, default=30.0)
    parser.add_argument(
        "--model-execute-timeout-secs",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="fail an execute still running after this long (503/UNAVAILABLE) and restart its instance "
        "(0: no limit; a model's TRITONLITE_EXECUTE_TIMEOUT_MS parameter overrides it)",
    )
    parser.add_argument(
        "--python-instance-mode",
        choices=("thread", "process"),
        default=None,
        help="run every python model's instances in threads of the server or in processes of their own, "
        "unless its config's TRITONLITE_INSTANCE_MODE says (decoupled models: threads only). Default: thread",
    )
    parser.add_argument(
        "--rate-limit",
        default="off",
        metavar="off|execution_count",
        help="off, or execution_count: instances run only when their resources are free",
    )
    parser.add_argument(
        "--rate-limit-resource",
        action="append",
        default=[],
        metavar="NAME:COUNT[:DEVICE]",
        help="resources available to the rate limiter (repeatable)",
    )
    parser.add_argument(
        "--backend-config",
        action="append",
        default=[],
        metavar="BACKEND,KEY=VALUE",
        help="a setting for one backend, e.g. onnxruntime,default-max-batch-size=8 (repeatable)",
    )
    parser.add_argument("--model-control-mode", default="none", choices=["none", "poll", "explicit"])
    parser.add_argument(
        "--load-model",
        action="append",
        default=[],
        metavar="NAME",
        help="explicit mode: a model to load at startup (repeatable; '*' for all)",
    )
    parser.add_argument("--repository-poll-secs", type=float, default=15.0)
    parser.add_argument("--model-load-thread-count", type=int, default=4)
    parser.add_argument(
        "--cache-config",
        action="append",
        default=[],
        metavar="local,size=BYTES",
        help="response cache: local,size=BYTES (models opt in with response_cache { enable: true })",
    )
    parser.add_argument("--response-cache-byte-size", type=int, default=None, help=argparse.SUPPRESS)
    _bool_flag(parser, "--exit-on-error", True, "exit when a model fails to load at startup (as Triton)")
    _bool_flag(
        parser,
        "--allow-cpu-fallback-for-gpu-instances",
        False,
        "load KIND_GPU instance groups on the CPU where this machine has no GPU (or not the GPU ids they "
        "name), instead of refusing the model as Triton does",
    )
    parser.add_argument(
        "--model-config-name",
        default="",
        metavar="NAME",
        help="read each model's configs/NAME.pbtxt instead of its config.pbtxt where it has one",
    )
    _bool_flag(
        parser,
        "--allow-symlinks-outside-repository",
        False,
        "read a model folder or config.pbtxt that is a symlink leading out of its model repository "
        "(refused by default)",
    )
    _bool_flag(parser, "--status-page", True, "serve a live status page at / on the HTTP port")
    parser.add_argument("--log-verbose", type=int, default=0)
    _bool_flag(parser, "--log-info", True, "log info messages")
    _bool_flag(parser, "--log-warning", True, "log warnings")
    _bool_flag(parser, "--log-error", True, "log errors")
    parser.add_argument("--log-file", default="", help="write the log to this file instead of stderr")
    parser.add_argument("--log-format", default="default", choices=["default", "ISO8601"])
    parser.add_argument(
        "--trace-config",
        action="append",
        default=[],
        metavar="[MODE,]KEY=VALUE",
        help="tracing: level=TIMESTAMPS|TENSORS|OFF, rate=N, count=N, file=PATH, log-frequency=N",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check every model of the repository (config, auto-complete, model files, ensemble wiring, sequence "
        "controls), print all problems and exit: 0 when there are none, 1 otherwise; loads and serves nothing",
    )
    parser.add_argument("--trace-file", help=argparse.SUPPRESS)
    parser.add_argument("--trace-level", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--trace-rate", help=argparse.SUPPRESS)
    parser.add_argument("--trace-count", help=argparse.SUPPRESS)
    parser.add_argument("--trace-log-frequency", help=argparse.SUPPRESS)
    parser.add_argument(
        "--disable-auto-complete-config", action="store_true", help="the same as --strict-model-config=true"
    )
    _add_grpc_transport_flags(parser)
    add_inert_flags(parser)
    return parser


def _add_grpc_transport_flags(parser: argparse.ArgumentParser) -> None:
    """Triton's gRPC transport flags, with Triton's defaults (GrpcChannelOptions)."""
    group = parser.add_argument_group("gRPC transport")
    for name, default, what in (
        ("--grpc-keepalive-time", 7_200_000, "ms between keepalive pings"),
        ("--grpc-keepalive-timeout", 20_000, "ms to wait for a keepalive ping's acknowledgement"),
        ("--grpc-http2-max-pings-without-data", 2, "pings sent with no data frame (0: no limit)"),
        ("--grpc-http2-min-recv-ping-interval-without-data", 300_000, "least ms between a client's pings"),
        ("--grpc-http2-max-ping-strikes", 2, "bad pings tolerated before GOAWAY (0: any)"),
        ("--grpc-max-connection-age", None, "ms a connection may live"),
        ("--grpc-max-connection-age-grace", None, "ms of grace after the maximum age"),
    ):
        group.add_argument(name, type=int, default=default, metavar="MS" if "ms" in what else "N", help=what)
    _bool_flag(group, "--grpc-keepalive-permit-without-calls", False, "allow keepalive pings with no call in flight")
    _bool_flag(group, "--reuse-grpc-port", False, "bind the gRPC port with SO_REUSEPORT")
    group.add_argument(
        "--grpc-infer-response-compression-level",
        default="none",
        choices=("none", "low", "medium", "high"),
        help="compress responses (gzip for low, medium and high)",
    )


def parse_trace_config(values: list[str]):
    from tritonlite.tracing.settings import parse_trace_config as parse

    return parse(values)


def parse_backend_config(values: list[str]) -> dict[str, dict[str, str]]:
    """Triton's ``--backend-config=<backend>,<key>=<value>``; without a backend the setting is global ("")."""
    settings: dict[str, dict[str, str]] = {}
    for value in values:
        backend, _, setting = value.partition(",") if "," in value else ("", "", value)
        key, sep, item = setting.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--backend-config option format is '<backend name>,<setting>=<value>' or '<setting>=<value>'. "
                f"Got {value}"
            )
        settings.setdefault(backend, {})[key] = item
    return settings


def _repository(text: str) -> str | Path:
    """A --model-repository value: a cloud URL as given (checked), or an absolute local path."""
    from tritonlite.repository.remote import is_remote, parse_remote

    if is_remote(text):
        parse_remote(text)  # ValueError names the repository
        return text
    return Path(text).resolve()


def check(
    repositories: list[str | Path],
    strict: bool,
    backend_settings: dict[str, dict[str, str]],
    config_name: str = "",
    allow_symlinks_outside: bool = False,
) -> int:
    """``--check``: print every problem of the local repositories; 1 when there is any."""
    from tritonlite.models.check import check_repositories

    remote = [str(r) for r in repositories if not isinstance(r, Path)]
    if remote:
        print(f"tritonlite-server: --check reads local repositories only, not {remote[0]}", file=sys.stderr)
        return 2
    problems = check_repositories(
        [Path(r) for r in repositories], strict, backend_settings, config_name, allow_symlinks_outside
    )
    for problem in problems:
        print(problem)
    count = len(problems)
    print(f"{count} problem{'' if count == 1 else 's'} found" if count else "no problems found", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    refusal = refused_flag(argv)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    inert_notes, refusal = inert_flag_notes(args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if args.disable_auto_complete_config:
        args.strict_model_config = True

    if args.rate_limit not in ("off", "execution_count"):
        print('Bad option: "--rate-limit".\ninvalid argument for --rate-limit', file=sys.stderr)
        return 1
    from tritonlite.metrics.config import parse_metrics_config

    try:
        metrics_config, metrics_notes = parse_metrics_config(args.metrics_config, args.metrics_interval_ms)
    except ValueError as exc:  # Triton's "Bad option" texts
        print(exc, file=sys.stderr)
        return 1
    from tritonlite.frontends.access import parse_restrictions

    try:
        http_restrictions = parse_restrictions(args.http_restricted_api, "--http-restricted-api", "api")
        grpc_restrictions = parse_restrictions(args.grpc_restricted_protocol, "--grpc-restricted-protocol", "protocol")
    except ValueError as exc:  # Triton's "Bad option" texts
        print(exc, file=sys.stderr)
        return 1
    try:
        backend_settings = parse_backend_config(args.backend_config)
        if args.python_instance_mode:
            backend_settings.setdefault("python", {})["instance-mode"] = args.python_instance_mode
        trace_values = list(args.trace_config)
        trace_values += [f"level={level}" for level in args.trace_level]
        if args.trace_file:
            trace_values.append(f"file={args.trace_file}")
        if args.trace_rate:
            trace_values.append(f"rate={args.trace_rate}")
        if args.trace_count:
            trace_values.append(f"count={args.trace_count}")
        if args.trace_log_frequency:
            trace_values.append(f"log-frequency={args.trace_log_frequency}")
        trace_settings = parse_trace_config(trace_values)
        from tritonlite.core.response_cache import parse_cache_config

        cache_bytes = parse_cache_config(args.cache_config)
        if args.response_cache_byte_size:
            cache_bytes = args.response_cache_byte_size
        repositories = [_repository(text) for text in args.model_repository]
    except ValueError as exc:
        print(f"tritonlite-server: {exc}", file=sys.stderr)
        return 2
    from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions

    grpc_channel = GrpcChannelOptions(
        keepalive_time_ms=args.grpc_keepalive_time,
        keepalive_timeout_ms=args.grpc_keepalive_timeout,
        keepalive_permit_without_calls=args.grpc_keepalive_permit_without_calls,
        http2_max_pings_without_data=args.grpc_http2_max_pings_without_data,
        http2_min_recv_ping_interval_without_data_ms=args.grpc_http2_min_recv_ping_interval_without_data,
        http2_max_ping_strikes=args.grpc_http2_max_ping_strikes,
        max_connection_age_ms=args.grpc_max_connection_age,
        max_connection_age_grace_ms=args.grpc_max_connection_age_grace,
        reuse_port=args.reuse_grpc_port,
        response_compression=args.grpc_infer_response_compression_level,
    )
    if any(char.isspace() for char in args.model_config_name):
        print("tritonlite-server: --model-config-name must not contain spaces", file=sys.stderr)
        return 2
    if args.check:
        return check(
            repositories, args.strict_model_config, backend_settings, args.model_config_name,
            args.allow_symlinks_outside_repository,
        )  # fmt: skip

    from tritonlite import logging_setup
    from tritonlite.frontends.tls import GrpcTls, HttpTls
    from tritonlite.server import ServerOptions, run

    logging_setup.configure(
        args.log_verbose, args.log_info, args.log_warning, args.log_error, args.log_format, args.log_file
    )
    for note in metrics_notes:
        logging.getLogger("tritonlite").warning("%s", note)
    for note in inert_notes:
        logging.getLogger("tritonlite").info("%s", note)
    options = ServerOptions(
        repositories=repositories,
        grpc_channel=grpc_channel,
        server_id=args.id,
        allow_http=args.allow_http,
        http_address=args.http_address,
        http_port=args.http_port,
        http_max_input_size=args.http_max_input_size,
        allow_grpc=args.allow_grpc,
        grpc_address=args.grpc_address,
        grpc_port=args.grpc_port,
        http_restrictions=http_restrictions,
        grpc_restrictions=grpc_restrictions,
        grpc_tls=GrpcTls(
            args.grpc_use_ssl,
            args.grpc_use_ssl_mutual,
            args.grpc_server_cert,
            args.grpc_server_key,
            args.grpc_root_cert,
        ),
        http_tls=HttpTls(args.http_ssl_certfile, args.http_ssl_keyfile, args.http_ssl_ca_certs),
        allow_metrics=args.allow_metrics,
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        allow_cpu_metrics=args.allow_cpu_metrics,
        allow_gpu_metrics=args.allow_gpu_metrics,
        strict_model_config=args.strict_model_config,
        strict_readiness=args.strict_readiness,
        exit_timeout_secs=args.exit_timeout_secs,
        execute_timeout_secs=args.model_execute_timeout_secs,
        exit_on_error=args.exit_on_error,
        rate_limit=args.rate_limit,
        rate_limit_resources=args.rate_limit_resource,
        backend_settings=backend_settings,
        trace_settings=trace_settings,
        model_control_mode=args.model_control_mode,
        load_models=args.load_model,
        poll_seconds=args.repository_poll_secs,
        load_threads=args.model_load_thread_count,
        cache_bytes=cache_bytes,
        metrics_config=metrics_config,
        cpu_fallback_for_gpu_instances=args.allow_cpu_fallback_for_gpu_instances,
        allow_openai=args.allow_openai,
        openai_address=args.openai_address,
        openai_port=args.openai_port,
        tokenizer=Path(args.tokenizer).resolve() if args.tokenizer else None,
        allow_symlinks_outside_repository=args.allow_symlinks_outside_repository,
        model_config_name=args.model_config_name,
        status_page=args.status_page,
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
