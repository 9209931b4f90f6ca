"""Every flag of ``tritonserver --help`` (Triton 2.51) starts tritonlite, or is refused naming why."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES, TESTS
from serverutil import RunningServer

from tritonlite import cli
from tritonlite.triton_flags import INERT_FLAGS, REFUSED_FLAGS

HELP = (TESTS / "reference_data" / "cli" / "tritonserver_2.51_help.txt").read_text()
# every option of the help text with the kind of value it takes ("" for none)
TRITON_FLAGS = dict(re.findall(r"^  (--[a-z0-9-]+)(?: <(.*)>)?$", HELP, re.MULTILINE))

SAMPLE_BY_KIND = {
    "": None, "string": "x", "integer": "1", "boolean": "false", "float": "6.0",
    "<string>,<string>=<string>": "k=v", "<string>:<string>=<string>": "health:key=value",
    "<integer>:<integer>": "0:1073741824", "<device_id>:<fraction>": "0:0.5", "<string>=<string>": "k=v",
    "<integer>-<integer>": "8000-8010", "<string>:<integer>:<integer>": "R1:2:0",
}  # fmt: skip
SAMPLE = {
    "--model-control-mode": "none", "--log-format": "default", "--rate-limit": "off", "--trace-level": "TIMESTAMPS",
    "--grpc-infer-response-compression-level": "none", "--cache-config": "local,size=1048576",
    "--trace-config": "rate=1", "--backend-config": "onnxruntime,default-max-batch-size=4",
    "--metrics-config": "summary_latencies=true", "--host-policy": "numa,cpu-cores=0", "--log-file": "",
    "--grpc-address": "127.0.0.1", "--http-address": "127.0.0.1", "--trace-file": "",
}  # fmt: skip


def test_the_help_text_was_read():
    assert len(TRITON_FLAGS) == 87 and TRITON_FLAGS["--exit-timeout-secs"] == "integer"


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flags")
    shutil.copytree(EXAMPLES / "add_sub", root / "add_sub")
    return root


@pytest.mark.parametrize("flag", sorted(set(TRITON_FLAGS) - {"--help", "--version"}))
def test_each_triton_flag(flag, repository, capsys):
    value = SAMPLE.get(flag, SAMPLE_BY_KIND[TRITON_FLAGS[flag]])
    given = [flag] if value is None else [f"{flag}={value}"]
    if flag in ("--model-repository", "--model-store"):
        given = [f"{flag}={repository}"]
    else:
        given.insert(0, f"--model-repository={repository}")
    code = cli.main([*given, "--check"])
    err = capsys.readouterr().err
    if flag in REFUSED_FLAGS:
        assert code == 2 and f"{flag} is refused: {REFUSED_FLAGS[flag]}" in err
    else:
        assert code == 0, err


@pytest.mark.parametrize("flag", ["--allow-sagemaker", "--allow-vertex-ai", "--model-namespacing"])
def test_a_value_that_would_change_results_is_refused(flag, repository, capsys):
    assert cli.main([f"--model-repository={repository}", f"{flag}=true", "--check"]) == 2
    assert f"{flag}=true is refused: " in capsys.readouterr().err


def test_every_inert_flag_is_a_triton_flag():
    assert {flag.name for flag in INERT_FLAGS} | set(REFUSED_FLAGS) <= set(TRITON_FLAGS)


def test_inert_flags_are_named_once_in_the_log(repository):
    server = RunningServer(
        [repository], "--pinned-memory-pool-byte-size=268435456", "--backend-directory=/opt/tritonserver/backends",
        "--allow-sagemaker=false",
    )  # fmt: skip
    try:
        log = server.log()
    finally:
        server.stop()
    assert log.count("--pinned-memory-pool-byte-size=268435456 has no effect in tritonlite: tensors live") == 1
    assert "--backend-directory=/opt/tritonserver/backends has no effect in tritonlite" in log
    assert "--allow-sagemaker=false has no effect" in log


def test_grpc_transport_flags_on_a_serving_server(repository):
    import numpy as np
    import tritonclient.grpc as grpcclient

    server = RunningServer(
        [repository], "--grpc-infer-response-compression-level=high", "--grpc-keepalive-time=10000",
        "--grpc-keepalive-permit-without-calls=true", "--grpc-max-connection-age=60000", "--reuse-grpc-port=true",
    )  # fmt: skip
    try:
        client = grpcclient.InferenceServerClient(server.grpc)
        inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
        for item in inputs:
            item.set_data_from_numpy(np.arange(4, dtype=np.float32))
        result = client.infer("add_sub", inputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(4, dtype=np.float32) * 2)
    finally:
        server.stop()
