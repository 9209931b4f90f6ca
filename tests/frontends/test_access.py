"""Restricted API groups without a server: the flags' parsing and errors, the endpoint-to-group maps.

Expected texts and groups are Triton 2.51's, captured from the reference server (``tritonserver
--http-restricted-api=... --grpc-restricted-protocol=...``, one flag per group with its own header, and
every endpoint called without it).
"""

from __future__ import annotations

import pytest

from tritonlite import cli
from tritonlite.frontends import access
from tritonlite.frontends.access import Restriction, parse_restrictions
from tritonlite.frontends.grpc.restricted import GROUP_BY_METHOD
from tritonlite.frontends.http.restricted import HeaderCheck, group_of_path, groups_of_path
from tritonlite.protocol import grpc_service_pb2 as pb
from tritonlite.triton_flags import INERT_FLAGS, REFUSED_FLAGS

HTTP_FLAG = "--http-restricted-api"
GRPC_FLAG = "--grpc-restricted-protocol"


def test_groups_and_their_headers_parse():
    parsed = parse_restrictions(
        ["health,inference:infer-key=secret", "model-repository:Admin-Key=a=b"], HTTP_FLAG, "api"
    )
    assert parsed.get("health") == Restriction("infer-key", "secret")
    assert parsed.get("inference") == Restriction("infer-key", "secret")
    assert parsed.get("model-repository") == Restriction("Admin-Key", "a=b")  # the value is all after the first '='
    assert parsed.get("metadata") is None
    assert parsed.get(None) is None


def test_a_header_may_hold_a_colon():
    # Triton splits the groups off at the first ':' ('metadata:a:b=c' expects header 'a:b')
    assert parse_restrictions(["metadata:a:b=c"], HTTP_FLAG, "api").get("metadata") == Restriction("a:b", "c")


def test_no_flag_restricts_nothing():
    assert not parse_restrictions([], HTTP_FLAG, "api")


FORMAT = "{flag} option format is '<config name>:<setting>=<value>'. Got {value}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["health,generate:k=v"], "unknown restricted api 'generate' "),
        (["Health:k=v"], "unknown restricted api 'Health' "),
        (["health,,metadata:k=v"], "unknown restricted api '' "),
        (["health,:k=v"], "unknown restricted api '' "),
        (["health:k"], FORMAT.format(flag=HTTP_FLAG, value="health:k")),
        (["health"], FORMAT.format(flag=HTTP_FLAG, value="health")),
        ([":k=v"], FORMAT.format(flag=HTTP_FLAG, value=":k=v")),
        (["health:=v"], FORMAT.format(flag=HTTP_FLAG, value="health:=v")),
        (["health:k="], FORMAT.format(flag=HTTP_FLAG, value="health:k=")),
        (["health:a=b", "health:c=d"], "restricted api 'health' can not be specified in multiple config groups"),
    ],
)
def test_http_flag_errors_are_tritons(values, message):
    with pytest.raises(ValueError) as raised:
        parse_restrictions(values, HTTP_FLAG, "api")
    assert str(raised.value) == f'Bad option: "{HTTP_FLAG}".\n{message}'


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["health,bogus:k=v"], "unknown restricted protocol 'bogus' "),
        (["health"], FORMAT.format(flag=GRPC_FLAG, value="health")),
        (["health:a=b", "health:c=d"], "restricted protocol 'health' can not be specified in multiple config groups"),
        (["health,health:k=v"], "restricted protocol 'health' can not be specified in multiple config groups"),
    ],
)
def test_grpc_flag_errors_are_tritons(values, message):
    with pytest.raises(ValueError) as raised:
        parse_restrictions(values, GRPC_FLAG, "protocol")
    assert str(raised.value) == f'Bad option: "{GRPC_FLAG}".\n{message}'


def test_cli_refuses_a_bad_value_with_exit_code_1(capsys):
    assert cli.main(["--model-repository=/models", "--http-restricted-api=health,generate:k=v"]) == 1
    assert capsys.readouterr().err == "Bad option: \"--http-restricted-api\".\nunknown restricted api 'generate' \n"
    assert cli.main(["--model-repository=/models", "--grpc-restricted-protocol=health"]) == 1
    err = capsys.readouterr().err
    assert err.startswith('Bad option: "--grpc-restricted-protocol".\n--grpc-restricted-protocol option format')


def test_cli_passes_restrictions_and_tls_to_the_server(monkeypatch, tmp_path):
    import tritonlite.logging_setup
    import tritonlite.server

    seen = {}

    def run(options):
        seen["options"] = options
        return 0

    monkeypatch.setattr(tritonlite.server, "run", run)
    monkeypatch.setattr(tritonlite.logging_setup, "configure", lambda *levels: None)
    argv = [
        f"--model-repository={tmp_path}",
        "--http-restricted-api=health:k=v",
        "--http-restricted-api=inference,statistics:infer-key=s",
        "--grpc-restricted-protocol=model-repository:admin=x",
        "--grpc-use-ssl-mutual=true",
        "--grpc-server-cert=/c.pem",
        "--grpc-server-key=/k.pem",
        "--grpc-root-cert=/ca.pem",
        "--http-ssl-certfile=/h.pem",
        "--http-ssl-keyfile=/hk.pem",
    ]
    assert cli.main(argv) == 0
    options = seen["options"]
    assert set(options.http_restrictions.by_group) == {"health", "inference", "statistics"}
    assert options.grpc_restrictions.get("model-repository") == Restriction("admin", "x")
    tls = options.grpc_tls
    assert (tls.enabled, tls.mutual, tls.server_cert, tls.server_key, tls.root_cert) == (
        True, True, "/c.pem", "/k.pem", "/ca.pem",
    )  # fmt: skip
    assert (options.http_tls.certfile, options.http_tls.keyfile, options.http_tls.ca_certs) == ("/h.pem", "/hk.pem", "")


def test_ssl_flags_are_no_longer_refused():
    for flag in ("--grpc-use-ssl", "--grpc-server-cert", "--grpc-server-key", "--grpc-root-cert"):
        assert flag not in REFUSED_FLAGS and flag not in {inert.name for inert in INERT_FLAGS}


# Triton 2.51's group of each HTTP path (captured: a restricted server's 403 names each group's header)
HTTP_GROUPS = {
    "/v2/health/live": "health",
    "/v2/health/ready": "health",
    "/v2/models/add_sub/ready": "health",
    "/v2/models/add_sub/versions/1/ready": "health",
    "/v2": "metadata",
    "/v2/models/add_sub": "metadata",
    "/v2/models/add_sub/versions/1": "metadata",
    "/v2/models/add_sub/infer": "inference",
    "/v2/models/add_sub/versions/1/infer": "inference",
    "/v2/models/add_sub/generate": "inference",
    "/v2/models/add_sub/generate_stream": "inference",
    "/v2/systemsharedmemory/status": "shared-memory",
    "/v2/systemsharedmemory/unregister": "shared-memory",
    "/v2/systemsharedmemory/region/r/register": "shared-memory",
    "/v2/cudasharedmemory/status": "shared-memory",
    "/v2/cudasharedmemory/region/x/register": "shared-memory",
    "/v2/models/add_sub/config": "model-config",
    "/v2/models/add_sub/versions/1/config": "model-config",
    "/v2/repository/index": "model-repository",
    "/v2/repository/models/add_sub/load": "model-repository",
    "/v2/repository/models/nope/unload": "model-repository",
    "/v2/models/stats": "statistics",
    "/v2/models/add_sub/stats": "statistics",
    "/v2/models/add_sub/versions/1/stats": "statistics",
    "/v2/trace/setting": "trace",
    "/v2/models/add_sub/trace/setting": "trace",
    "/v2/logging": "logging",
    # no Triton endpoint: 404 whatever is restricted
    "/v2/nothing": None,
    "/v2/models/add_sub/versions/1/trace/setting": None,
    "/": None,
    "/metrics": None,
}


@pytest.mark.parametrize(("path", "group"), HTTP_GROUPS.items())
def test_http_path_groups_are_tritons(path, group):
    assert group_of_path(path) == group


@pytest.mark.parametrize(
    ("path", "groups"),
    [
        ("/v2/models/add_sub/infer", ("inference",)),
        ("/status.json", ("model-repository", "metadata", "statistics")),  # the status page's data
        ("/", ()),  # the page itself holds none
        ("/v1/chat/completions", ("inference",)),  # the OpenAI routes, as Triton's OpenAI frontend groups them
        ("/v1/completions", ("inference",)),
        ("/v1/embeddings", ("inference",)),
        ("/v1/models", ("model-repository",)),
        ("/v1/models/tiny_llm", ("model-repository",)),
        ("/v1/other", ()),
    ],
)
def test_tritonlite_endpoints_need_the_groups_of_what_they_show(path, groups):
    assert groups_of_path(path) == groups


# Triton 2.51's group of each RPC (captured as above)
GRPC_GROUPS = {
    "ServerLive": "health", "ServerReady": "health", "ModelReady": "health",
    "ServerMetadata": "metadata", "ModelMetadata": "metadata",
    "ModelInfer": "inference", "ModelStreamInfer": "inference",
    "ModelConfig": "model-config", "ModelStatistics": "statistics",
    "RepositoryIndex": "model-repository", "RepositoryModelLoad": "model-repository",
    "RepositoryModelUnload": "model-repository",
    "SystemSharedMemoryStatus": "shared-memory", "SystemSharedMemoryRegister": "shared-memory",
    "SystemSharedMemoryUnregister": "shared-memory", "CudaSharedMemoryStatus": "shared-memory",
    "CudaSharedMemoryRegister": "shared-memory", "CudaSharedMemoryUnregister": "shared-memory",
    "TraceSetting": "trace", "LogSettings": "logging",
}  # fmt: skip


def test_every_rpc_of_the_service_has_tritons_group():
    methods = {method.name for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert GROUP_BY_METHOD == GRPC_GROUPS
    assert set(GROUP_BY_METHOD) == methods
    assert set(GROUP_BY_METHOD.values()) == set(access.GROUPS)


def test_header_check_as_triton_matches():
    check = HeaderCheck.of(Restriction("Infer-Key", "Secret"))
    assert check.refusal == b'{"error":"This API is restricted, expecting header \'Infer-Key\'"}'
    assert check.allows([(b"host", b"h"), (b"infer-key", b"Secret")])  # names in any case (parsed lower-case)
    assert not check.allows([(b"infer-key", b"secret")])  # values exactly
    assert not check.allows([])
    assert not check.allows([(b"infer-key", b"x"), (b"infer-key", b"Secret")])  # the first one decides
    assert check.allows([(b"infer-key", b"Secret"), (b"infer-key", b"x")])


def test_plain_request_path_reads_the_inference_header():
    from tritonlite.frontends.http.plain_request import parse_head
    from tritonlite.frontends.http.targets import InferTargets

    guard = HeaderCheck.of(Restriction("Infer-Key", "s"))
    head = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nInfer-Key: s\r\nContent-Length: 2"
    parsed = parse_head(head, InferTargets(), guard)
    assert parsed is not None and parsed.headers.allowed  # an allowed client keeps the fast path
    assert parse_head(head.replace(b"Key: s", b"Key: t"), InferTargets(), guard).headers.allowed is False
    bare = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2"
    assert parse_head(bare, InferTargets(), guard).headers.allowed is False
    assert parse_head(bare, InferTargets()).headers.allowed  # nothing restricted
    assert parse_head(head, InferTargets()) is None  # unrestricted, the header is no plain one: httptools reads it
