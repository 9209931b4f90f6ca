"""The PyTorch backend with TorchScript modules scripted in the test (skips without torch).

``TRITONLITE_TEST_DEVICE=GPU`` runs the same tests with KIND_GPU instances (benchmarks/device_check.sh).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

torch = pytest.importorskip("torch")

from tritonlite.backends import auto_complete, create_instance  # noqa: E402
from tritonlite.backends.base import InstanceSpec  # noqa: E402
from tritonlite.core.config_json import config_to_json  # noqa: E402
from tritonlite.core.datatypes import datatype_of  # noqa: E402
from tritonlite.core.errors import ErrorKind, TritonError  # noqa: E402
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput  # noqa: E402
from tritonlite.protocol import model_config_pb2 as mc  # noqa: E402
from tritonlite.repository.config import complete_config, validate_config  # noqa: E402

# torch 2.13 marks TorchScript deprecated; Triton's PyTorch backend runs TorchScript
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KIND = os.environ.get("TRITONLITE_TEST_DEVICE", "CPU")
if KIND == "GPU" and not torch.cuda.is_available():
    pytest.skip("TRITONLITE_TEST_DEVICE=GPU but torch sees no GPU", allow_module_level=True)


class AddSub(torch.nn.Module):
    def forward(self, x, y):
        return x + y, x - y


class Scale(torch.nn.Module):
    def forward(self, x):
        return x * 2.0


class Named(torch.nn.Module):
    def forward(self, left, right):
        return left * 10 + right


class DictInput(torch.nn.Module):
    def forward(self, inputs: dict[str, torch.Tensor]):
        return inputs["A"] - inputs["B"]


class Upper(torch.nn.Module):
    def forward(self, words: list[str]) -> list[str]:
        return [w.upper() for w in words]


class Fails(torch.nn.Module):
    def forward(self, x):
        if bool(x.sum() > 100):
            raise RuntimeError("sum too large")
        return x


class Half(torch.nn.Module):
    def forward(self, x):
        return (x * 2).to(torch.float16), (x * 2).to(torch.bfloat16)


def save(module: torch.nn.Module, root: Path, name: str, config: str) -> Path:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    torch.jit.save(torch.jit.script(module), str(folder / "1" / "model.pt"))
    (folder / "config.pbtxt").write_text(config)
    return folder


def spec(folder: Path, kind: str = KIND) -> InstanceSpec:
    config = mc.ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(), config)
    config = auto_complete(config, folder, folder / "1", {})
    complete_config(config, folder.name)
    validate_config(config, folder.name)
    return InstanceSpec(folder.name, 1, folder, config, config_to_json(config), f"{folder.name}_0", kind, 0)


def request(rid: str, outputs: list[str] | None = None, **inputs: np.ndarray) -> InferRequest:
    tensors = [InferTensor(n, datatype_of(a), list(a.shape), a) for n, a in inputs.items()]
    return InferRequest("m", "", rid, tensors, [RequestedOutput(o) for o in outputs] if outputs else None)


def outputs_of(response) -> dict[str, np.ndarray]:
    assert isinstance(response, InferResponse), response
    return {t.name: t.data for t in response.outputs}


ADD_SUB = """
platform: "pytorch_libtorch"
max_batch_size: 8
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 3 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 3 ] }]
"""


def test_batched_execution_with_indexed_names(tmp_path):
    instance = create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", ADD_SUB)))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (2, 1, 3)]
    ys = [rng.standard_normal((n, 3)).astype(np.float32) for n in (2, 1, 3)]
    results = instance.execute([request(str(i), INPUT__0=xs[i], INPUT__1=ys[i]) for i in range(3)])
    for i, result in enumerate(results):
        out = outputs_of(result)
        np.testing.assert_allclose(out["OUTPUT__0"], xs[i] + ys[i], rtol=1e-6)
        np.testing.assert_allclose(out["OUTPUT__1"], xs[i] - ys[i], rtol=1e-6)
        assert result.outputs[0].datatype == "FP32" and result.outputs[0].shape == [xs[i].shape[0], 3]
    assert all(t > 0 for t in instance.timings)
    assert instance.device.type == ("cuda" if KIND == "GPU" else "cpu")
    instance.finalize()


def test_requested_outputs_only(tmp_path):
    instance = create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", ADD_SUB)))
    x = np.ones((1, 3), np.float32)
    first, second = instance.execute(
        [request("0", ["OUTPUT__1"], INPUT__0=x, INPUT__1=x), request("1", None, INPUT__0=x, INPUT__1=x)]
    )
    assert [t.name for t in first.outputs] == ["OUTPUT__1"]
    assert sorted(t.name for t in second.outputs) == ["OUTPUT__0", "OUTPUT__1"]


def test_single_tensor_output_is_output_0(tmp_path):
    config = """
backend: "pytorch"
max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }]
"""
    folder = save(Scale(), tmp_path, "scale", config)
    assert spec(folder).config.platform == "pytorch_libtorch"  # filled from the backend, as Triton
    instance = create_instance("pytorch", spec(folder))
    (result,) = instance.execute([request("0", INPUT__0=np.array([[1, 2, 3, 4]], np.float32))])
    np.testing.assert_array_equal(outputs_of(result)["OUTPUT__0"], [[2, 4, 6, 8]])


def test_forward_argument_names(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "right" data_type: TYPE_INT64 dims: [ 1 ] }, { name: "left" data_type: TYPE_INT64 dims: [ 1 ] }]
output [{ name: "result" data_type: TYPE_INT64 dims: [ 1 ] }]
"""
    instance = create_instance("pytorch", spec(save(Named(), tmp_path, "named", config)))
    (result,) = instance.execute([request("0", left=np.array([[1], [2]]), right=np.array([[5], [6]]))])
    np.testing.assert_array_equal(outputs_of(result)["result"], [[15], [26]])


def test_dictionary_input(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "A" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] }]
"""
    instance = create_instance("pytorch", spec(save(DictInput(), tmp_path, "dict", config)))
    (result,) = instance.execute([request("0", A=np.array([[5, 5]], np.float32), B=np.array([[1, 2]], np.float32))])
    np.testing.assert_array_equal(outputs_of(result)["OUTPUT__0"], [[4, 3]])


def test_string_list_input_and_output(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_STRING dims: [ 1 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_STRING dims: [ 1 ] }]
"""
    instance = create_instance("pytorch", spec(save(Upper(), tmp_path, "upper", config), kind="CPU"))
    first, second = instance.execute(
        [
            request("0", INPUT__0=np.array([[b"abc"], [b"d"]], dtype=object)),
            request("1", INPUT__0=np.array([["héllo".encode()]], dtype=object)),
        ]
    )
    assert outputs_of(first)["OUTPUT__0"].tolist() == [[b"ABC"], [b"D"]]
    assert outputs_of(second)["OUTPUT__0"].tolist() == [["HéLLO".encode()]]  # TorchScript upper() is ASCII
    assert first.outputs[0].datatype == "BYTES"


def test_fp16_and_bf16_outputs(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP16 dims: [ 2 ] }, { name: "OUTPUT__1" data_type: TYPE_BF16 dims: [ 2 ] }]
"""
    instance = create_instance("pytorch", spec(save(Half(), tmp_path, "half", config)))
    (result,) = instance.execute([request("0", INPUT__0=np.array([[1.5, -2]], np.float32))])
    out = outputs_of(result)
    assert out["OUTPUT__0"].dtype == np.float16
    np.testing.assert_array_equal(out["OUTPUT__0"], [[3, -4]])
    assert result.outputs[1].datatype == "BF16" and out["OUTPUT__1"].dtype == np.uint16
    as_float = (out["OUTPUT__1"].astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(as_float, [[3, -4]])


def test_wrong_output_type_fails_the_batch(tmp_path):
    config = ADD_SUB.replace('"OUTPUT__1" data_type: TYPE_FP32', '"OUTPUT__1" data_type: TYPE_INT32')
    instance = create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", config)))
    x = np.ones((1, 3), np.float32)
    results = instance.execute([request("0", INPUT__0=x, INPUT__1=x), request("1", INPUT__0=x, INPUT__1=x)])
    for result in results:
        assert isinstance(result, TritonError) and result.kind == ErrorKind.INTERNAL
        assert (
            result.message
            == "unexpected datatype TYPE_FP32 for inference output 'OUTPUT__1', expecting type TYPE_INT32"
        )


def test_model_exception_fails_every_request_of_the_batch(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 1 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] }]
"""
    instance = create_instance("pytorch", spec(save(Fails(), tmp_path, "fails", config)))
    ok = np.ones((1, 1), np.float32)
    big = np.full((1, 1), 1000, np.float32)
    results = instance.execute([request("0", INPUT__0=ok), request("1", INPUT__0=big)])
    for result in results:
        assert isinstance(result, TritonError)
        assert result.message.startswith("PyTorch execute failure: ") and "sum too large" in result.message
    (alone,) = instance.execute([request("2", INPUT__0=ok)])
    np.testing.assert_array_equal(outputs_of(alone)["OUTPUT__0"], ok)


def test_input_count_must_match_forward(tmp_path):
    config = """
platform: "pytorch_libtorch"
max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] }]
"""
    with pytest.raises(TritonError) as caught:
        create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", config)))
    assert caught.value.message == "unable to load model 'add_sub', configuration expects 1 inputs, model provides 2"


def test_not_torchscript_fails_to_load(tmp_path):
    folder = tmp_path / "broken"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.pt").write_bytes(b"not a zip")
    (folder / "config.pbtxt").write_text(ADD_SUB)
    with pytest.raises(TritonError) as caught:
        create_instance("pytorch", spec(folder))
    assert caught.value.message.startswith("failed to load model 'broken': ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_instance_without_cuda_is_unavailable(tmp_path):
    with pytest.raises(TritonError) as caught:
        create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", ADD_SUB), kind="GPU"))
    assert caught.value.kind == ErrorKind.UNAVAILABLE
    assert "KIND_GPU device 0" in caught.value.message and "needs CUDA" in caught.value.message


def test_model_pt_alone_is_detected_as_pytorch(tmp_path):
    folder = save(Scale(), tmp_path, "scale", "")
    raw = auto_complete(mc.ModelConfig(), folder, folder / "1", {})
    assert (raw.backend, raw.platform) == ("pytorch", "pytorch_libtorch")
    assert len(raw.input) == 0  # TorchScript does not describe its inputs: no auto-complete, as in Triton


@pytest.mark.parametrize(("disabled", "during"), [("false", True), ("true", False)])
def test_optimized_execution_is_the_configured_one_during_forward_and_restored_after(tmp_path, disabled, during):
    config = ADD_SUB + (f'parameters {{ key: "DISABLE_OPTIMIZED_EXECUTION" value {{ string_value: "{disabled}" }} }}\n')
    instance = create_instance("pytorch", spec(save(AddSub(), tmp_path, "add_sub", config)))
    seen = []
    scripted = instance.module

    def recording(*args):
        seen.append(torch._C._get_graph_executor_optimize())
        return scripted(*args)

    instance.module = recording
    before = torch._C._get_graph_executor_optimize()
    x = np.ones((1, 3), np.float32)
    for _ in range(2):
        result = instance.execute([request("r", INPUT__0=x, INPUT__1=x)])[0]
        np.testing.assert_array_equal(outputs_of(result)["OUTPUT__0"], x * 2)
    assert seen == [during, during]
    assert torch._C._get_graph_executor_optimize() == before
    instance.finalize()
