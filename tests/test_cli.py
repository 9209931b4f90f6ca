"""Unit tests of tritonlite.cli (no server is started)."""

from __future__ import annotations

import argparse

import pytest

from tritonlite import TRITON_COMPATIBLE_VERSION, __version__, cli
from tritonlite.triton_flags import refused_flag


@pytest.mark.parametrize(
    "argv",
    [
        ["--model-repository=/models", "--grpc-header-forward-pattern=x-.*"],
        ["--model-repository", "/models", "--grpc-header-forward-pattern", "x-.*"],
        ["--grpc-header-forward-pattern=x-.*", "--model-repository=/models"],
    ],
)
def test_a_refused_flag_exits_2_naming_it(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tritonlite-server: --grpc-header-forward-pattern is refused: tritonlite does not forward")
    assert "remove it to start the server" in err


def test_a_refused_flag_is_refused_before_parsing(capsys):
    # even without the required --model-repository the refusal names the flag
    assert cli.main(["--http-header-forward-pattern=.*"]) == 2
    assert "--http-header-forward-pattern" in capsys.readouterr().err


def test_model_control_flags_parse():
    args = cli.build_parser().parse_args(
        ["--model-repository=/m", "--model-control-mode=explicit", "--load-model=a", "--load-model=*",
         "--repository-poll-secs=2.5", "--model-load-thread-count=2"]
    )  # fmt: skip
    assert (args.model_control_mode, args.load_model) == ("explicit", ["a", "*"])
    assert (args.repository_poll_secs, args.model_load_thread_count) == (2.5, 2)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--model-repository=/m", "--model-control-mode=sometimes"])


def test_rate_limit_flags_parse():
    args = cli.build_parser().parse_args(
        [
            "--model-repository=/m",
            "--rate-limit=execution_count",
            "--rate-limit-resource=R1:2",
            "--rate-limit-resource=R2:1:0",
        ]
    )
    assert args.rate_limit == "execution_count" and args.rate_limit_resource == ["R1:2", "R2:1:0"]


def test_flag_value_that_looks_like_a_refused_flag_is_not_refused():
    assert refused_flag(["--model-repository=/models", "--id=--http-header-forward-pattern"]) is None
    args = cli.build_parser().parse_args(["--model-repository=/models", "--id=--http-header-forward-pattern"])
    assert args.id == "--http-header-forward-pattern"


def test_grpc_transport_flags_become_channel_settings(monkeypatch):
    import tritonlite.logging_setup
    import tritonlite.server

    seen = {}
    monkeypatch.setattr(tritonlite.server, "run", lambda options: seen.setdefault("options", options) and 0)
    monkeypatch.setattr(tritonlite.logging_setup, "configure", lambda *levels: None)
    cli.main(
        ["--model-repository=/models", "--grpc-keepalive-time=1000", "--grpc-keepalive-permit-without-calls=1",
         "--grpc-max-connection-age=5000", "--reuse-grpc-port=true", "--grpc-infer-response-compression-level=high"]
    )  # fmt: skip
    channel = seen["options"].grpc_channel
    assert channel.keepalive_time_ms == 1000 and channel.keepalive_permit_without_calls is True
    assert channel.keepalive_timeout_ms == 20_000 and channel.http2_max_ping_strikes == 2  # Triton's
    assert channel.max_connection_age_ms == 5000 and channel.max_connection_age_grace_ms is None
    assert channel.reuse_port is True
    assert channel.response_encoding == "gzip"


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "1", "yes", "on", " true "])
def test_parse_bool_true(text):
    assert cli.parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "off"])
def test_parse_bool_false(text):
    assert cli.parse_bool(text) is False


@pytest.mark.parametrize("text", ["maybe", "", "2", "tru"])
def test_parse_bool_rejects_other_text(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a boolean"):
        cli.parse_bool(text)


def test_version_exits_zero(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.strip() == f"tritonlite {__version__} (Triton {TRITON_COMPATIBLE_VERSION} compatible)"


def test_missing_model_repository_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "--model-repository" in capsys.readouterr().err


def test_bad_boolean_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--model-repository=/models", "--allow-grpc=perhaps"])
    assert info.value.code == 2
    assert "expected a boolean (true/false), got 'perhaps'" in capsys.readouterr().err


def test_defaults_are_tritons():
    args = cli.build_parser().parse_args(["--model-repository=/models"])
    assert args.model_repository == ["/models"]
    assert (args.http_port, args.grpc_port, args.metrics_port) == (8000, 8001, 8002)
    assert args.allow_http and args.allow_grpc and args.allow_metrics
    assert args.strict_model_config is False
    assert args.strict_readiness is True
    assert args.exit_on_error is True
    assert args.exit_timeout_secs == 30.0
    assert args.id == "triton"
    assert args.log_verbose == 0


def test_repeated_repositories_and_model_store_alias():
    args = cli.build_parser().parse_args(["--model-repository=/a", "--model-store", "/b"])
    assert args.model_repository == ["/a", "/b"]


def test_boolean_flags_accept_values_and_bare_form():
    parser = cli.build_parser()
    args = parser.parse_args(
        ["--model-repository=/m", "--allow-http=false", "--exit-on-error", "0", "--strict-model-config"]
    )
    assert args.allow_http is False
    assert args.exit_on_error is False
    assert args.strict_model_config is True


def test_main_passes_options_to_the_server(monkeypatch, tmp_path):
    import tritonlite.logging_setup
    import tritonlite.server

    seen = {}

    def run(options):
        seen["options"] = options
        return 0

    def configure(*levels):
        seen["logging"] = levels

    monkeypatch.setattr(tritonlite.server, "run", run)
    monkeypatch.setattr(tritonlite.logging_setup, "configure", configure)
    code = cli.main([f"--model-repository={tmp_path}", "--http-port=9000", "--allow-grpc=false", "--log-verbose=1"])
    assert code == 0
    options = seen["options"]
    assert options.repositories == [tmp_path.resolve()]
    assert options.http_port == 9000
    assert options.allow_grpc is False
    assert seen["logging"] == (1, True, True, True, "default", "")


def test_backend_config_parses_per_backend_and_global_settings():
    settings = cli.parse_backend_config(["onnxruntime,default-max-batch-size=8", "python,shm=1", "x=y"])
    assert settings == {"onnxruntime": {"default-max-batch-size": "8"}, "python": {"shm": "1"}, "": {"x": "y"}}
    with pytest.raises(ValueError, match="--backend-config option format"):
        cli.parse_backend_config(["onnxruntime,novalue"])
