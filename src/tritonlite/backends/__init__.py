"""Backends: what runs a model. Each backend creates instances behind one small interface."""

from __future__ import annotations

from pathlib import Path

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.core.errors import unavailable
from tritonlite.protocol import model_config_pb2 as mc

# --backend-config=<backend>,<key>=<value>: settings per backend name
BackendSettings = dict[str, dict[str, str]]


def create_instance(backend: str, spec: InstanceSpec) -> BackendInstance:
    """Create (and initialize) one instance of a model with the named backend."""
    if backend == "python":
        from tritonlite.backends.python.backend import PythonInstance
        from tritonlite.backends.python.process_instance import PROCESS, PythonProcessInstance, instance_mode

        if instance_mode(spec) == PROCESS:  # TRITONLITE_INSTANCE_MODE: "thread" (default) or "process"
            return PythonProcessInstance(spec)
        return PythonInstance(spec)
    if backend == "onnxruntime":
        from tritonlite.backends.onnxruntime.backend import OnnxRuntimeInstance

        return OnnxRuntimeInstance(spec)
    if backend == "pytorch":
        from tritonlite.backends.pytorch.backend import PyTorchInstance

        return PyTorchInstance(spec)
    if backend == "tensorrt":
        from tritonlite.backends.tensorrt.backend import TensorRTInstance

        return TensorRTInstance(spec)
    raise unavailable(f"unable to find backend library for backend '{backend}'")


def auto_complete(
    config: mc.ModelConfig,
    model_path: Path,
    version_path: Path | None,
    settings: BackendSettings,
) -> mc.ModelConfig:
    """Fill what the model itself can tell (Triton's auto-complete, ``--strict-model-config=false``).

    Called before Triton's defaults are applied, with the folder of the newest version (or
    None when there is none). ``config.backend``/``platform`` may still be empty: a backend
    may recognise its model file and claim the model. Returns the (possibly new) config.
    """
    from tritonlite.repository.config import backend_of

    config = complete_backend_fields(config, version_path)
    backend = backend_of(config)
    if backend == "python" and version_path is not None:
        from tritonlite.backends.python.backend import complete_python_config

        return complete_python_config(config, model_path, version_path)
    if backend == "onnxruntime":
        from tritonlite.backends.onnxruntime.backend import complete_onnx_config

        return complete_onnx_config(config, model_path, version_path, settings)
    if backend == "tensorrt":
        from tritonlite.backends.tensorrt.backend import complete_tensorrt_config

        return complete_tensorrt_config(config, model_path, version_path, settings)
    return config  # pytorch: TorchScript does not describe its inputs and outputs (as in Triton)


# Triton's framework backends in the order its core tries them: backend, platform, model file
_FRAMEWORKS = (
    ("tensorrt", "tensorrt_plan", "model.plan"),
    ("onnxruntime", "onnxruntime_onnx", "model.onnx"),
    ("pytorch", "pytorch_libtorch", "model.pt"),
)


def complete_backend_fields(config: mc.ModelConfig, version_path: Path | None) -> mc.ModelConfig:
    """Triton's backend detection: fill ``backend``, ``platform`` and ``default_model_filename``.

    A config without a backend gets one from its platform, its default_model_filename, or
    (with neither) the model file in the version folder (model.plan, model.onnx, model.pt);
    a framework backend without a platform gets its platform.
    """
    for backend, platform, filename in _FRAMEWORKS:
        if not config.backend:
            if config.platform == platform or config.default_model_filename == filename:
                config = _copy_with(config, backend=backend)
            elif (
                not config.platform
                and not config.default_model_filename
                and version_path is not None
                and (version_path / filename).is_file()
            ):
                config = _copy_with(config, backend=backend)
        if config.backend == backend:
            changes = {}
            if not config.platform:
                changes["platform"] = platform
            if not config.default_model_filename:
                changes["default_model_filename"] = filename
            return _copy_with(config, **changes) if changes else config
    return config


def _copy_with(config: mc.ModelConfig, **fields: str) -> mc.ModelConfig:
    copy = mc.ModelConfig()
    copy.CopyFrom(config)
    for key, value in fields.items():
        setattr(copy, key, value)
    return copy


__all__ = [
    "BackendInstance",
    "BackendSettings",
    "InstanceSpec",
    "auto_complete",
    "complete_backend_fields",
    "create_instance",
]
