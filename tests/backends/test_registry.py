"""The backend registry: one record per backend, looked up by name or platform; heavy code stays unimported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tritonlite.backends import create_instance
from tritonlite.backends.registry import BACKENDS, backend_of, by_name, by_platform, known_platform
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc


def test_model_filenames():
    assert by_name("python").model_filename == "model.py"
    assert by_name("pytorch").model_filename == "model.pt"
    assert by_name("custom") is None


def test_platforms():
    assert by_platform("onnxruntime_onnx").name == "onnxruntime"
    assert by_platform("tensorflow_graphdef").name == "tensorflow"
    assert by_platform("ensemble") is None
    assert known_platform("ensemble") and known_platform("tensorrt_plan")
    assert not known_platform("caffe2_netdef")
    assert backend_of(mc.ModelConfig(platform="pytorch_libtorch")) == "pytorch"


def test_framework_backends_in_triton_core_order():
    assert [b.name for b in BACKENDS if b.framework] == ["tensorflow", "tensorrt", "onnxruntime", "pytorch"]


def test_each_runnable_backend_names_code_that_exists():
    runnable = [backend for backend in BACKENDS if backend.instance]
    assert [b.name for b in runnable] == ["tensorflow", "tensorrt", "onnxruntime", "pytorch", "python", "dali"]
    for backend in runnable:  # the modules import their frameworks only when a model loads
        assert callable(backend.code(backend.instance))
        assert not backend.complete or callable(backend.code(backend.complete))


@pytest.mark.parametrize("name", ["custom", "openvino"])
def test_a_backend_tritonlite_cannot_run(name):
    with pytest.raises(TritonError) as error:
        create_instance(name, None)
    assert error.value.kind == ErrorKind.UNAVAILABLE
    assert error.value.message == f"unable to find backend library for backend '{name}'"


def test_heavy_backends_are_not_imported_with_the_registry():
    code = (
        "import sys, tritonlite.backends, tritonlite.repository.config, tritonlite.models.manager\n"
        "heavy = [m for m in ('onnxruntime', 'torch', 'tensorrt', 'nvidia.dali', 'tensorflow') if m in sys.modules]\n"
        "mine = [m for m in sys.modules if m.startswith('tritonlite.backends.') and m.endswith('.backend')]\n"
        "print(heavy, mine)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
