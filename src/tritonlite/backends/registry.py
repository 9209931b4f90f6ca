"""The backends tritonlite knows: one record each, looked up by backend name or by platform.

A record holds what Triton's core knows of a backend (the platforms it serves, the model file it
looks for, whether Triton's core detects it from its model file) and where its code lives. The code is imported
only when a model of the backend loads or is auto-completed: onnxruntime, torch, TensorRT, DALI and
TensorFlow are heavy and optional, so the records name modules instead of importing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from tritonlite.protocol import model_config_pb2 as mc

# --backend-config=<backend>,<key>=<value>: settings per backend name
BackendSettings = dict[str, dict[str, str]]

# the platform of ensembles: the core runs them (scheduling/ensemble.py), no backend does
ENSEMBLE_PLATFORM = "ensemble"


@dataclass(frozen=True)
class Backend:
    """One backend: its facts, and its code by module and attribute name."""

    name: str
    # the model file Triton looks for when default_model_filename is empty
    model_filename: str
    # the platform names it serves; the first is the one Triton fills in for it
    platforms: tuple[str, ...] = ()
    # a framework backend: Triton's core fills backend, platform and model file name for it from
    # any one of them, or from its model file in the version folder (tried in the order of BACKENDS)
    framework: bool = False
    # the module that runs its models ("" where tritonlite cannot run them)
    module: str = ""
    # in ``module``: InstanceSpec -> BackendInstance
    instance: str = ""
    # in ``module``: (config, model_path, version_path | None, settings) -> config; "" for none
    complete: str = ""
    # its model is a folder (a SavedModel), not a file
    model_is_folder: bool = False

    def has_model_at(self, version_path: Path) -> bool:
        """Whether a version folder holds this backend's default model file (or folder)."""
        path = version_path / self.model_filename
        return path.is_dir() if self.model_is_folder else path.is_file()

    def code(self, attribute: str) -> Any:
        """``attribute`` of the backend's module, imported on first use."""
        return getattr(import_module(self.module), attribute)


_HERE = "tritonlite.backends.registry"

BACKENDS: tuple[Backend, ...] = (
    # the framework backends first, in the order Triton's core tries them
    Backend(
        "tensorflow",
        "model.savedmodel",
        ("tensorflow_savedmodel", "tensorflow_graphdef"),
        framework=True,
        module="tritonlite.backends.tensorflow.backend",
        instance="TensorFlowInstance",
        complete="complete_tensorflow_config",
        model_is_folder=True,
    ),
    Backend(
        "tensorrt",
        "model.plan",
        ("tensorrt_plan",),
        framework=True,
        module="tritonlite.backends.tensorrt.backend",
        instance="TensorRTInstance",
        complete="complete_tensorrt_config",
    ),
    Backend(
        "onnxruntime",
        "model.onnx",
        ("onnxruntime_onnx",),
        framework=True,
        module="tritonlite.backends.onnxruntime.backend",
        instance="OnnxRuntimeInstance",
        complete="complete_onnx_config",
    ),
    # TorchScript does not describe its inputs and outputs: no auto-complete (as in Triton)
    Backend(
        "pytorch",
        "model.pt",
        ("pytorch_libtorch",),
        framework=True,
        module="tritonlite.backends.pytorch.backend",
        instance="PyTorchInstance",
    ),
    Backend("python", "model.py", module=_HERE, instance="python_instance", complete="complete_python"),
    # a serialized DALI pipeline; not detected from its file (Triton's core does not know DALI)
    Backend(
        "dali",
        "model.dali",
        module="tritonlite.backends.dali.backend",
        instance="DaliInstance",
        complete="complete_dali_config",
    ),
    Backend("openvino", "model.xml"),
)

_BY_NAME = {backend.name: backend for backend in BACKENDS}
_BY_PLATFORM = {platform: backend for backend in BACKENDS for platform in backend.platforms}


def by_name(name: str) -> Backend | None:
    return _BY_NAME.get(name)


def by_platform(platform: str) -> Backend | None:
    return _BY_PLATFORM.get(platform)


def known_platform(platform: str) -> bool:
    """Whether a config may name ``platform`` (a backend's, or the ensemble's)."""
    return platform in _BY_PLATFORM or platform == ENSEMBLE_PLATFORM


def backend_of(config: mc.ModelConfig) -> str:
    """The name of the backend that runs a config's model ("" for an ensemble or an unknown platform)."""
    if config.backend:
        return config.backend
    backend = _BY_PLATFORM.get(config.platform)
    return backend.name if backend is not None else ""


# --- the python backend's entry points in the shape of the others -----------------------------


def python_instance(spec: Any) -> Any:
    """A python model's instance: on a thread, or in a process of its own when the model asks for one
    (``TRITONLITE_INSTANCE_MODE``)."""
    process = import_module("tritonlite.backends.python.process_instance")
    if process.instance_mode(spec) == process.PROCESS:
        return process.PythonProcessInstance(spec)
    return import_module("tritonlite.backends.python.backend").PythonInstance(spec)


def complete_python(
    config: mc.ModelConfig, model_path: Path, version_path: Path | None, settings: BackendSettings
) -> mc.ModelConfig:
    """The model's own ``auto_complete_config`` (it needs a version folder to import the model from)."""
    if version_path is None:
        return config
    return import_module("tritonlite.backends.python.backend").complete_python_config(config, model_path, version_path)
