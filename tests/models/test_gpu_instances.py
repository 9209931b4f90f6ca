"""KIND_GPU instance groups: refused as Triton refuses them where there is no GPU (or not the GPU id
they name), loaded where there is one, and on the CPU with --allow-cpu-fallback-for-gpu-instances.

The expected texts were captured from Triton 2.51 (the reference tritonserver on a machine without
a GPU, python backend models).
"""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from serverutil import RunningServer
from tritonclient.utils import InferenceServerException

from tritonlite import cli
from tritonlite.core.types import InferRequest, InferTensor
from tritonlite.models import loader
from tritonlite.models.manager import ModelManager

# answers the kind and device id the instance was given
KIND_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.where = f"{args['model_instance_kind']}:{args['model_instance_device_id']}"

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", np.array([self.where], np.object_))])
                for _ in requests]
"""

# captured from Triton 2.51 (repository index reasons, no GPU on the machine)
NO_GPU_REASON = (
    "Invalid argument: instance group gpu_model_0 of model gpu_model has kind KIND_GPU but no GPUs are available"
)
GPU0_REASON = (
    "Invalid argument: instance group gpu0_model_0 of model gpu0_model specifies invalid or unsupported gpu id 0. "
    "GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: "
)
TRITON_INDEX = [
    {"name": "cpu_model", "version": "1", "state": "READY"},
    {"name": "gpu0_model", "version": "1", "state": "UNAVAILABLE", "reason": GPU0_REASON},
    {"name": "gpu_model", "version": "1", "state": "UNAVAILABLE", "reason": NO_GPU_REASON},
]


def write_model(root: Path, name: str, group: str) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_STRING dims: [ 1 ] }]\n'
        f"instance_group [{{ {group} }}]\n"
    )
    (folder / "1" / "model.py").write_text(KIND_MODEL)


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpu_repository")
    write_model(root, "gpu_model", "kind: KIND_GPU count: 1")
    write_model(root, "gpu0_model", "kind: KIND_GPU count: 1 gpus: [ 0 ]")
    write_model(root, "cpu_model", "kind: KIND_CPU count: 1")
    return root


def load(root: Path, gpus: tuple[int, ...], monkeypatch, fallback: bool = False) -> tuple[list[dict], dict]:
    """Every model of ``root`` loaded as if this machine had ``gpus``: the repository index, and each
    model's answer (its instance's kind and device), or its index row where it did not load."""
    monkeypatch.setattr(loader, "visible_gpus", lambda: gpus)
    manager = ModelManager([root])
    manager.cpu_fallback_for_gpu_instances = fallback

    async def go() -> tuple[list[dict], dict]:
        await manager.load_all()
        index, answers = manager.index(), {}
        for row in index:
            if row["state"] != "READY":
                answers[row["name"]] = row
                continue
            request = InferRequest(row["name"], "", inputs=[InferTensor("INPUT0", "FP32", [1], np.ones(1, np.float32))])
            response = await manager.get(row["name"]).infer(request)
            answers[row["name"]] = str(response.outputs[0].data.reshape(-1)[0])
        await manager.shutdown()
        return index, answers

    return asyncio.run(go())


def test_no_gpu_refuses_kind_gpu_groups_in_tritons_words(repository, monkeypatch):
    index, answers = load(repository, (), monkeypatch)
    assert index == TRITON_INDEX
    assert answers["cpu_model"] == "CPU:0"


def test_with_a_gpu_kind_gpu_groups_load_on_it(repository, monkeypatch):
    _, answers = load(repository, (0,), monkeypatch)
    assert answers == {"cpu_model": "CPU:0", "gpu_model": "GPU:0", "gpu0_model": "GPU:0"}


def test_a_gpu_id_the_machine_lacks_is_refused_with_the_ids_it_has(tmp_path, monkeypatch):
    write_model(tmp_path, "two", "kind: KIND_GPU gpus: [ 0, 2 ]")
    _, answers = load(tmp_path, (0, 1), monkeypatch)
    assert answers["two"]["reason"] == (
        "Invalid argument: instance group two_0 of model two specifies invalid or unsupported gpu id 2. "
        "GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: 0, 1"
    )


def test_cpu_fallback_loads_kind_gpu_groups_without_a_gpu(repository, monkeypatch, caplog):
    index, answers = load(repository, (), monkeypatch, fallback=True)
    assert answers == {"cpu_model": "CPU:0", "gpu_model": "GPU:0", "gpu0_model": "GPU:0"}
    assert all(row["state"] == "READY" for row in index)
    assert "has kind KIND_GPU but no GPUs are available; its instances run on the CPU" in caplog.text


def test_cpu_fallback_flag_parses_and_is_off_by_default():
    def fallback(*flags: str) -> bool:
        return cli.build_parser().parse_args(["--model-repository=/m", *flags]).allow_cpu_fallback_for_gpu_instances

    assert fallback() is False
    assert fallback("--allow-cpu-fallback-for-gpu-instances=true") is True
    assert fallback("--allow-cpu-fallback-for-gpu-instances") is True
    assert fallback("--allow-cpu-fallback-for-gpu-instances=false") is False


def _fake_module(monkeypatch, name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, module)


def _nothing_importable(monkeypatch) -> None:
    for name in ("pynvml", "cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import fails


def test_probe_without_any_gpu_library_or_driver_sees_no_gpu(monkeypatch):
    _nothing_importable(monkeypatch)
    monkeypatch.setattr(loader, "_driver_gpu_count", lambda: None)
    assert loader.visible_gpus.__wrapped__() == ()


def test_probe_asks_nvml_first_and_honours_cuda_visible_devices(monkeypatch):
    _nothing_importable(monkeypatch)
    _fake_module(monkeypatch, "pynvml", nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert loader.visible_gpus.__wrapped__() == (0, 1, 2, 3)
    for visible, expected in [("2,3", (0, 1)), ("", ()), ("-1", ()), ("1,9,2", (0,)), ("GPU-abc", (0,))]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert loader.visible_gpus.__wrapped__() == expected, visible


def test_probe_falls_through_to_the_driver_when_the_libraries_do_not_answer(monkeypatch, tmp_path):
    _nothing_importable(monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(loader, "_driver_gpu_count", lambda: 2)
    assert loader.visible_gpus.__wrapped__() == (0, 1)


# --- a real server on this machine, which has no GPU -------------------------------------------


@pytest.fixture(scope="module")
def no_gpu():
    if loader.visible_gpus():
        pytest.skip("this machine has a GPU")


def test_server_answers_as_triton_without_a_gpu(repository, no_gpu):
    server = RunningServer([repository], "--exit-on-error=false")
    try:
        base = f"http://{server.http}/v2"
        assert requests.post(f"{base}/repository/index", timeout=5).json() == TRITON_INDEX
        # captured from Triton 2.51: 400 {"error":"Model version not ready"}; metadata 404; server not ready
        for path in ("/models/gpu_model/ready", "/models/gpu_model/versions/1/ready"):
            answer = requests.get(base + path, timeout=5)
            assert (answer.status_code, answer.json()) == (400, {"error": "Model version not ready"})
        answer = requests.get(f"{base}/models/gpu_model", timeout=5)
        assert answer.status_code == 404
        assert answer.json() == {"error": "Request for unknown model: 'gpu_model' has no available versions"}
        assert requests.get(f"{base}/health/ready", timeout=5).status_code == 400
        assert requests.get(f"{base}/models/cpu_model/ready", timeout=5).status_code == 200
    finally:
        server.stop()


def test_server_exits_at_startup_on_a_kind_gpu_model_without_a_gpu(repository, no_gpu):
    server = RunningServer([repository], "--model-control-mode=explicit", "--load-model=gpu_model", wait_ready=False)
    try:
        assert server.process.wait(60) == 1  # Triton 2.51 exits 1 too
        # captured from Triton 2.51 (--model-control-mode=explicit --load-model=gpu_model)
        assert (
            "error: creating server: Invalid argument - load failed for model 'gpu_model': version 1 is at "
            f"UNAVAILABLE state: {NO_GPU_REASON};"
        ) in server.log()
    finally:
        server.stop()


def test_explicit_load_is_refused_in_tritons_words(repository, no_gpu):
    server = RunningServer([repository], "--model-control-mode=explicit")
    try:
        # captured from Triton 2.51: HTTP 400, gRPC INVALID_ARGUMENT, both with this message
        message = f"load failed for model 'gpu_model': version 1 is at UNAVAILABLE state: {NO_GPU_REASON};\n"
        answer = requests.post(f"http://{server.http}/v2/repository/models/gpu_model/load", timeout=30)
        assert (answer.status_code, answer.json()) == (400, {"error": message})
        with pytest.raises(InferenceServerException) as caught:
            grpcclient.InferenceServerClient(server.grpc).load_model("gpu_model")
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT" and caught.value.message() == message
    finally:
        server.stop()


def test_server_with_cpu_fallback_serves_kind_gpu_models(repository):
    server = RunningServer([repository], "--allow-cpu-fallback-for-gpu-instances=true")
    try:
        base = f"http://{server.http}/v2"
        assert all(row["state"] == "READY" for row in requests.post(f"{base}/repository/index", timeout=5).json())
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        answer = requests.post(f"{base}/models/gpu_model/infer", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == ["GPU:0"]
    finally:
        server.stop()
