"""The in-process server's life: start and stop (no thread left), readiness and metadata, the
repository index, explicit load and unload, startup failures, two servers in one process."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time

import numpy as np
import pytest
from inprocess_models import TEST_REPOSITORY, build_repository

import tritonlite

A = np.array([1, 2, 3, 4], dtype=np.float32)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return build_repository(tmp_path_factory.mktemp("inprocess_server"))


def threads_settle(before: set[threading.Thread], timeout: float = 10.0) -> set[threading.Thread]:
    """The threads alive beyond ``before`` once those that are ending have ended."""
    deadline = time.monotonic() + timeout
    while True:
        extra = set(threading.enumerate()) - before
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)


def add_sub(server: tritonlite.Server) -> list[float]:
    (response,) = server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": A})
    return np.asarray(response.outputs["OUTPUT0"]).tolist()


def test_start_serve_stop_leaves_no_thread(repository):
    before = set(threading.enumerate())
    server = tritonlite.Server(model_repository=str(repository))
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server not started"):
        server.live()
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server not started"):
        server.model("add_sub")
    assert server.start(wait_until_ready=True) is server
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server already started"):
        server.start()
    assert server.live() and server.ready()
    metadata = server.metadata()
    assert metadata["name"] == "triton" and metadata["version"] == tritonlite.TRITON_COMPATIBLE_VERSION
    assert "model_repository" in metadata["extensions"]
    assert add_sub(server) == [2, 4, 6, 8]
    metrics = server.metrics()
    assert 'nv_inference_request_success{model="add_sub",version="1"} 1' in metrics
    assert "# TYPE nv_cpu_utilization gauge" in metrics
    assert len(set(threading.enumerate()) - before) > 0
    server.stop()
    assert threads_settle(before) == set()
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server not started"):
        server.ready()


def test_a_model_kept_after_stop_refuses(repository):
    server = tritonlite.Server(model_repository=repository).start()
    model = server.model("add_sub")
    server.stop()
    with pytest.raises(tritonlite.InvalidArgumentError, match="Server not started"):
        model.infer(inputs={"INPUT0": A, "INPUT1": A})


def test_restart_and_context_manager(repository):
    server = tritonlite.Server(tritonlite.Options(model_repository=[repository], server_id="mine"))
    with server:
        assert server.metadata()["name"] == "mine"
        assert add_sub(server) == [2, 4, 6, 8]
    server.start()  # stopped servers start again
    assert add_sub(server) == [2, 4, 6, 8]
    server.stop()


def test_models_lists_states(repository):
    with tritonlite.Server(model_repository=repository) as server:
        models = server.models()
        assert ("add_sub", 1) in models and models[("add_sub", 1)].state == "READY"
        assert models["add_sub"].name == "add_sub" and models["add_sub"].version == -1
        with pytest.raises(KeyError, match="Unknown Model"):
            models["no_such_model"]
        assert {key for key in server.models(exclude_not_ready=True)} == {key for key in models}


def test_a_model_that_fails_to_load_fails_start(tmp_path):
    before = set(threading.enumerate())
    with pytest.raises(tritonlite.InternalError, match="failed to load all models"):
        tritonlite.Server(model_repository=TEST_REPOSITORY).start()
    assert threads_settle(before) == set()
    # exit_on_error=False serves the others; strict readiness keeps the server not ready
    server = tritonlite.Server(model_repository=TEST_REPOSITORY, exit_on_error=False).start()
    try:
        assert not server.ready()
        assert add_sub(server) == [2, 4, 6, 8]
        models = server.models()
        assert models[("init_fails", 1)].state == "UNAVAILABLE"
        assert "initialize failed on purpose" in models[("init_fails", 1)].reason
        with pytest.raises(tritonlite.UnavailableError, match="Timeout before ready"):
            tritonlite.Server(model_repository=TEST_REPOSITORY, exit_on_error=False).start(wait_until_ready=True)
    finally:
        server.stop()


def test_bad_options(tmp_path):
    with pytest.raises(tritonlite.InvalidArgumentError, match="model repository does not exist"):
        tritonlite.Server(model_repository=tmp_path / "missing").start()
    with pytest.raises(tritonlite.InvalidArgumentError, match="Model repository must be specified"):
        tritonlite.Server().start()
    with pytest.raises(TypeError):
        tritonlite.Server(no_such_option=1)


def test_explicit_load_and_unload(repository):
    options = tritonlite.Options(
        model_repository=repository,
        model_control_mode=tritonlite.ModelControlMode.EXPLICIT,
        startup_models=["string_upper"],
    )
    with tritonlite.Server(options) as server:
        models = server.models()
        assert models[("add_sub", -1)].state is None  # in the repository, not loaded
        assert models[("string_upper", 1)].state == "READY"
        with pytest.raises(tritonlite.NotFoundError, match="Request for unknown model: 'add_sub' is not found"):
            server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": A})
        model = server.load("add_sub")
        assert model.ready() and add_sub(server) == [2, 4, 6, 8]
        assert server.models()[("add_sub", 1)].state == "READY"
        server.unload("add_sub", wait_until_unloaded=True)
        assert server.models()[("add_sub", 1)].state == "UNAVAILABLE"
        with pytest.raises(tritonlite.NotFoundError):
            server.model("add_sub").infer(inputs={"INPUT0": A, "INPUT1": A})
        with pytest.raises(tritonlite.InternalError) as info:
            server.load("no_such_model")
        assert str(info.value) == "failed to load 'no_such_model', failed to poll from model repository"
        # a config override (the whole config), as the repository extension's load takes it
        config = server.model("string_upper").config()
        config["instance_group"] = [{"count": 2, "kind": "KIND_CPU"}]
        server.load("string_upper", {"config": json.dumps(config)})
        assert server.model("string_upper").config()["instance_group"][0]["count"] == 2


def test_load_outside_explicit_mode_is_refused_as_triton_refuses_it(repository):
    with tritonlite.Server(model_repository=repository) as server:
        with pytest.raises(tritonlite.UnavailableError) as info:
            server.load("add_sub")
        assert str(info.value) == "explicit model load / unload is not allowed if polling is enabled"
        with pytest.raises(tritonlite.UnavailableError):
            server.unload("add_sub")


def test_two_servers_in_one_process(repository, tmp_path):
    before = set(threading.enumerate())
    first = tritonlite.Server(model_repository=repository).start()
    second = tritonlite.Server(model_repository=TEST_REPOSITORY, exit_on_error=False).start()
    try:
        assert add_sub(first) == add_sub(second) == [2, 4, 6, 8]
        assert "gated" in {name for name, _ in first.models()}
        assert "gated" not in {name for name, _ in second.models()}
        first.stop()
        assert add_sub(second) == [2, 4, 6, 8]
    finally:
        second.stop()
    assert threads_settle(before) == set()


def test_a_model_outlives_its_server_object_and_the_last_reference_stops_it(repository):
    before = set(threading.enumerate())
    model = tritonlite.Server(model_repository=repository).start().model("add_sub")
    gc.collect()
    (response,) = model.infer(inputs={"INPUT0": A, "INPUT1": A})
    assert np.asarray(response.outputs["OUTPUT0"]).tolist() == [2, 4, 6, 8]
    del model, response
    gc.collect()
    assert threads_settle(before) == set()


def test_start_and_stop_inside_a_running_event_loop(repository):
    async def main() -> list[float]:
        with tritonlite.Server(model_repository=repository) as server:
            return add_sub(server)

    assert asyncio.run(main()) == [2, 4, 6, 8]
