"""S3 model repositories through a real server, a real S3 API (moto's server on loopback) and tritonclient."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer, free_port
from tritonclient.utils import InferenceServerException

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port, and the environment tritonlite reads credentials from."""
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(endpoint, timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)  # the servers started by the tests inherit them
        client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
        yield client, port
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


_buckets = iter(range(1000))


@pytest.fixture
def bucket(s3):
    client, port = s3
    name = f"models-{next(_buckets)}"
    client.create_bucket(Bucket=name)
    return client, name, port


def upload(client, bucket: str, model: Path, prefix: str = "repo", name: str | None = None) -> None:
    for path in sorted(model.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            key = f"{prefix}/{name or model.name}/{path.relative_to(model).as_posix()}"
            client.upload_file(str(path), bucket, key)


def delete_model(client, bucket: str, model: str, prefix: str = "repo") -> None:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{model}/")
    for item in listed.get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])


def add_sub_inputs(module):
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(np.arange(4, dtype=np.float32))
    inputs[1].set_data_from_numpy(np.ones(4, np.float32))
    return inputs


def index(server: RunningServer) -> list[dict]:
    return requests.post(f"http://{server.http}/v2/repository/index", timeout=10).json()


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_serves_an_s3_repository_beside_a_local_one(bucket, tmp_path):
    client, name, port = bucket
    upload(client, name, EXAMPLES / "add_sub")
    local = tmp_path / "local"
    shutil.copytree(EXAMPLES / "string_upper", local / "string_upper")
    server = RunningServer([local, f"s3://127.0.0.1:{port}/{name}/repo"])
    try:
        wait_for(lambda: requests.get(f"http://{server.http}/v2/health/ready", timeout=2).status_code == 200)
        for module, address in ((httpclient, server.http), (grpcclient, server.grpc)):
            result = module.InferenceServerClient(address).infer("add_sub", add_sub_inputs(module))
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(4) + 1)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.arange(4) - 1)
        text = httpclient.InferInput("TEXT", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"hello"], dtype=object))
        upper = httpclient.InferenceServerClient(server.http).infer("string_upper", [text])
        assert upper.as_numpy("UPPER").tolist() == [b"HELLO"]
        assert [row["name"] for row in index(server)] == ["add_sub", "string_upper"]
        assert f"s3://127.0.0.1:{port}/{name}/repo" in server.log()  # the options table names it
    finally:
        assert server.stop() == 0


def test_poll_mode_follows_the_bucket(bucket, tmp_path):
    client, name, port = bucket
    upload(client, name, EXAMPLES / "add_sub")
    upload(client, name, EXAMPLES / "identity")
    mount = tmp_path / "mount"
    mount.mkdir()
    os.environ["TRITON_AWS_MOUNT_DIRECTORY"] = str(mount)
    try:
        server = RunningServer(
            [f"s3://127.0.0.1:{port}/{name}/repo"], "--model-control-mode=poll", "--repository-poll-secs=0.5"
        )
    finally:
        del os.environ["TRITON_AWS_MOUNT_DIRECTORY"]
    copy = mount / f"127.0.0.1_{port}" / name / "repo"
    try:
        wait_for(lambda: requests.get(f"http://{server.http}/v2/health/ready", timeout=2).status_code == 200)
        assert (copy / "add_sub" / "1" / "model.py").is_file()  # the copy lives in the mount directory
        http = httpclient.InferenceServerClient(server.http)

        # a new model
        upload(client, name, EXAMPLES / "string_upper")
        wait_for(lambda: http.is_model_ready("string_upper"))

        # a changed config (all versions) and a new version of add_sub
        config = (EXAMPLES / "add_sub" / "config.pbtxt").read_text() + "\nversion_policy: { all { } }\n"
        client.put_object(Bucket=name, Key="repo/add_sub/config.pbtxt", Body=config.encode())
        client.upload_file(str(EXAMPLES / "add_sub" / "1" / "model.py"), name, "repo/add_sub/2/model.py")
        wait_for(lambda: http.is_model_ready("add_sub", "2"))
        assert http.is_model_ready("add_sub", "1")
        result = http.infer("add_sub", add_sub_inputs(httpclient), model_version="2")
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.arange(4) + 1)

        # a deleted model
        delete_model(client, name, "identity")
        wait_for(lambda: "identity" not in [row["name"] for row in index(server)])
        assert not (copy / "identity").exists()
        with pytest.raises(InferenceServerException):
            http.infer("identity", [httpclient.InferInput("INPUT0", [1, 1], "FP32")])

        # polls that find nothing new reload nothing
        loads = server.log().count("changed in the repository: loading")
        time.sleep(1.5)
        assert server.log().count("changed in the repository: loading") == loads
        assert {row["name"]: row.get("state") for row in index(server)} == {
            "add_sub": "READY",
            "string_upper": "READY",
        }
    finally:
        assert server.stop() == 0
    assert list(mount.iterdir()) == []  # the copy is removed at exit


def test_explicit_mode_loads_and_unloads_from_s3(bucket):
    client, name, port = bucket
    upload(client, name, EXAMPLES / "add_sub")
    upload(client, name, EXAMPLES / "identity")
    server = RunningServer(
        [f"s3://127.0.0.1:{port}/{name}/repo"], "--model-control-mode=explicit", "--load-model=add_sub"
    )
    try:
        http = httpclient.InferenceServerClient(server.http)
        wait_for(lambda: http.is_model_ready("add_sub"))
        assert index(server) == [
            {"name": "add_sub", "version": "1", "state": "READY"},
            {"name": "identity"},  # listed, not loaded
        ]
        grpc = grpcclient.InferenceServerClient(server.grpc)
        grpc.load_model("identity")
        assert http.is_model_ready("identity")

        # a model uploaded after startup loads by name
        upload(client, name, EXAMPLES / "string_upper")
        http.load_model("string_upper")
        text = httpclient.InferInput("TEXT", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"s3"], dtype=object))
        assert http.infer("string_upper", [text]).as_numpy("UPPER").tolist() == [b"S3"]

        http.unload_model("identity")
        wait_for(lambda: not http.is_model_ready("identity"))
        with pytest.raises(InferenceServerException) as info:
            http.load_model("not_in_the_bucket")
        assert "failed to load 'not_in_the_bucket'" in info.value.message()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("what", ["missing bucket", "unreachable endpoint"])
def test_a_repository_that_cannot_be_read_stops_the_server(s3, what):
    _, port = s3
    if what == "missing bucket":
        url = f"s3://127.0.0.1:{port}/no-such-bucket/repo"
        reason = "bucket or container not found"
    else:
        url = f"s3://127.0.0.1:{free_port()}/models/repo"
        reason = "EndpointConnectionError: Could not connect to the endpoint URL"
    server = RunningServer([url], wait_ready=False)
    try:
        assert server.process.wait(60) == 1
    finally:
        server.stop()
    log = server.log()
    assert f"error: creating server: Internal - failed to read model repository '{url}': {reason}" in log
    assert "Traceback" not in log


def test_no_credentials_stop_the_server(bucket, tmp_path, monkeypatch):
    client, name, port = bucket
    upload(client, name, EXAMPLES / "add_sub")
    for key in CREDENTIALS:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url = f"s3://127.0.0.1:{port}/{name}/repo"
    server = RunningServer([url], wait_ready=False)
    try:
        assert server.process.wait(60) == 1
    finally:
        server.stop()
    assert f"failed to read model repository '{url}': no credentials found" in server.log()


def test_credentials_from_the_aws_credentials_file(bucket, tmp_path, monkeypatch):
    client, name, port = bucket
    upload(client, name, EXAMPLES / "add_sub")
    for key in CREDENTIALS:
        monkeypatch.delenv(key)
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = fromfile\naws_secret_access_key = fromfile\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = RunningServer([f"s3://127.0.0.1:{port}/{name}/repo"])
    try:
        wait_for(lambda: httpclient.InferenceServerClient(server.http).is_model_ready("add_sub"))
    finally:
        assert server.stop() == 0


def test_a_bad_url_is_refused_before_starting(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tritonlite", "--model-repository=s3://https://host/bucket"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid model repository 's3://https://host/bucket'" in result.stderr
