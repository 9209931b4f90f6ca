"""Model control modes and the repository API through a real server and tritonclient."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import EXAMPLES, TEST_REPOSITORY
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

REFERENCE = json.loads((Path(__file__).parents[1] / "reference_data" / "triton_2.51.json").read_text())

# tritonlite lists a model whose config does not parse with its reason after a failed load
# (Triton shows the bare name); the other answers must be Triton's.
DELIBERATE = {"repository_index_after_failed_loads", "repository_index_after_unload"}


def add_sub_inputs(module, value: float = 1.0):
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    for item in inputs:
        item.set_data_from_numpy(np.full(4, value, np.float32))
    return inputs


def test_explicit_mode_answers_match_triton():
    server = RunningServer([TEST_REPOSITORY], "--model-control-mode=explicit", "--exit-on-error=false")
    capture_path = REFERENCE["repository_abs_path_at_capture"]
    try:
        for case in REFERENCE["explicit_mode"]["cases"]:
            if case["id"] in DELIBERATE:
                continue
            request, expected = case["request"], case["answer"]
            if case["protocol"] == "http":
                answer = requests.request(
                    request["method"], f"http://{server.http}{request['path']}", headers=request["headers"],
                    data=base64.b64decode(request["body_b64"]), timeout=60,
                )  # fmt: skip
                assert answer.status_code == expected["status"], (case["id"], answer.text)
                if expected.get("json") is not None:
                    want = json.loads(
                        json.dumps(expected["json"]).replace(capture_path, str(TEST_REPOSITORY.resolve()))
                    )
                    assert answer.json() == want, case["id"]
            else:
                client = grpcclient.InferenceServerClient(server.grpc)
                rpc = request["rpc"]
                name = (request.get("request_json") or {}).get("model_name", "")
                try:
                    if rpc == "RepositoryModelLoad":
                        client.load_model(name)
                    elif rpc == "RepositoryModelUnload":
                        client.unload_model(name)
                    elif rpc == "RepositoryIndex":
                        client.get_model_repository_index()
                    else:
                        continue
                    code, details = "OK", ""
                except InferenceServerException as exc:
                    code, details = exc.status().split(".")[-1], exc.message()
                want = expected["details"].replace(capture_path, str(TEST_REPOSITORY.resolve()))
                assert (code, details) == (expected["code"], want), case["id"]
    finally:
        server.stop()


def test_load_and_unload_are_refused_outside_explicit_mode():
    server = RunningServer([EXAMPLES])
    try:
        answer = requests.post(f"http://{server.http}/v2/repository/models/add_sub/load", timeout=10)
        assert answer.status_code == 503
        assert answer.json() == {"error": "explicit model load / unload is not allowed if polling is enabled"}
        with pytest.raises(InferenceServerException, match="not allowed if polling is enabled"):
            grpcclient.InferenceServerClient(server.grpc).unload_model("add_sub")
    finally:
        server.stop()


@pytest.fixture()
def explicit(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    server = RunningServer([repo], "--model-control-mode=explicit", "--load-model=add_sub", "--exit-on-error=false")
    yield server, repo
    server.stop()


def test_load_model_flag_and_index_in_explicit_mode(explicit):
    server, _ = explicit
    client = httpclient.InferenceServerClient(server.http)
    rows = {row["name"]: row for row in client.get_model_repository_index()}
    assert rows["add_sub"]["state"] == "READY" and rows["identity"] == {"name": "identity"}
    assert client.is_server_ready()
    client.load_model("identity")
    assert client.is_model_ready("identity")
    client.unload_model("identity")
    assert not client.is_model_ready("identity")
    rows = {row["name"]: row for row in client.get_model_repository_index()}
    assert rows["identity"] == {"name": "identity", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}


def test_config_and_file_override_load_a_new_model(explicit):
    server, repo = explicit
    client = httpclient.InferenceServerClient(server.http)
    config = {
        "name": "doubler", "backend": "python", "max_batch_size": 0,
        "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
        "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}],
    }  # fmt: skip
    code = (
        b"import triton_python_backend_utils as pb_utils\n"
        b"class TritonPythonModel:\n"
        b"    def execute(self, requests):\n"
        b"        get = pb_utils.get_input_tensor_by_name\n"
        b"        out = [pb_utils.Tensor('Y', 2 * get(r, 'X').as_numpy()) for r in requests]\n"
        b"        return [pb_utils.InferenceResponse([t]) for t in out]\n"
    )
    client.load_model("doubler", config=json.dumps(config), files={"file:1/model.py": code})
    inp = httpclient.InferInput("X", [2], "FP32")
    inp.set_data_from_numpy(np.array([1.5, 2.0], np.float32))
    np.testing.assert_array_equal(client.infer("doubler", [inp]).as_numpy("Y"), [3.0, 4.0])
    assert not (repo / "doubler").exists()  # the override lives outside the repository
    # a config override of an existing model: add_sub as max_batch_size 0 still, new version policy
    original = client.get_model_config("add_sub")
    original["parameters"] = {"NOTE": {"string_value": "overridden"}}
    client.load_model("add_sub", config=json.dumps(original))
    assert client.get_model_config("add_sub")["parameters"]["NOTE"]["string_value"] == "overridden"


@pytest.mark.parametrize("path", ["file:../escape.py", "file:/etc/passwd", "file:1/../../escape.py"])
def test_file_override_paths_cannot_leave_the_model_folder(explicit, path):
    server, repo = explicit
    config = json.dumps({"name": "evil", "backend": "python"})
    body = {"parameters": {"config": config, path: base64.b64encode(b"x = 1\n").decode()}}
    answer = requests.post(f"http://{server.http}/v2/repository/models/evil/load", json=body, timeout=10)
    assert answer.status_code == 400 and "invalid file path" in answer.json()["error"]
    assert not (repo / "escape.py").exists() and not (repo.parent / "escape.py").exists()


def test_invalid_model_names_are_refused(explicit):
    server, _ = explicit
    answer = requests.post(f"http://{server.http}/v2/repository/models/..%2Fetc/load", timeout=10)
    assert answer.status_code in (400, 404)
    with pytest.raises(InferenceServerException, match="invalid model name"):
        grpcclient.InferenceServerClient(server.grpc).load_model("../etc")


def test_broken_reload_keeps_the_old_version_serving(explicit):
    server, repo = explicit
    client = httpclient.InferenceServerClient(server.http)
    (repo / "add_sub" / "1" / "model.py").write_text(
        "class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('broken on purpose')\n"
    )
    with pytest.raises(InferenceServerException, match="load failed for model 'add_sub'.*broken on purpose"):
        client.load_model("add_sub")
    result = client.infer("add_sub", add_sub_inputs(httpclient, 2.0))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full(4, 4.0, np.float32))


def test_reload_under_load_fails_no_request(explicit):
    server, _ = explicit
    stop = threading.Event()
    outcomes = {"ok": 0, "failed": []}

    def hammer():
        client = httpclient.InferenceServerClient(server.http)
        while not stop.is_set():
            try:
                client.infer("add_sub", add_sub_inputs(httpclient))
                outcomes["ok"] += 1
            except InferenceServerException as exc:
                outcomes["failed"].append(exc.message())

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        client = grpcclient.InferenceServerClient(server.grpc)
        for _ in range(3):
            time.sleep(0.2)
            client.load_model("add_sub")  # reload while requests run
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert outcomes["failed"] == [] and outcomes["ok"] > 20


def test_checksum_agent_refuses_a_modified_file(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_sub")
    digest = hashlib.md5((repo / "add_sub" / "1" / "model.py").read_bytes()).hexdigest()
    config = (repo / "add_sub" / "config.pbtxt").read_text()
    agent = (
        'model_repository_agents {{ agents [{{ name: "checksum" '
        'parameters {{ key: "MD5:1/model.py" value: "{}" }} }}] }}\n'
    )
    (repo / "add_sub" / "config.pbtxt").write_text(config + agent.format(digest))
    shutil.copytree(repo / "add_sub", repo / "tampered")
    (repo / "tampered" / "config.pbtxt").write_text(
        (repo / "tampered" / "config.pbtxt").read_text().replace('name: "add_sub"', 'name: "tampered"')
    )
    with (repo / "tampered" / "1" / "model.py").open("a") as handle:
        handle.write("\n# changed\n")
    server = RunningServer([repo], "--exit-on-error=false")
    try:
        rows = {row["name"]: row for row in httpclient.InferenceServerClient(server.http).get_model_repository_index()}
    finally:
        server.stop()
    assert rows["add_sub"]["state"] == "READY"
    assert (
        rows["tampered"]["state"] == "UNAVAILABLE"
        and "checksum agent: MD5 of '1/model.py'" in rows["tampered"]["reason"]
    )


def test_poll_mode_picks_up_added_changed_and_removed_models(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_sub")
    server = RunningServer([repo], "--model-control-mode=poll", "--repository-poll-secs=0.3")
    client = httpclient.InferenceServerClient(server.http)

    def wait_for(predicate, what: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"poll did not pick up: {what}")

    try:
        shutil.copytree(EXAMPLES / "identity", repo / "identity")
        wait_for(lambda: client.is_model_ready("identity"), "an added model")
        model = repo / "add_sub" / "1" / "model.py"
        model.write_text(model.read_text().replace("in0 + in1", "in0 + in1 + 100"))
        wait_for(
            lambda: client.infer("add_sub", add_sub_inputs(httpclient)).as_numpy("OUTPUT0")[0] == 102.0,
            "a changed model.py",
        )
        shutil.rmtree(repo / "identity")
        wait_for(lambda: "identity" not in {r["name"] for r in client.get_model_repository_index()}, "a removed model")
        assert client.is_model_ready("add_sub")
    finally:
        server.stop()
