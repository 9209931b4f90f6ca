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

    if backend_of(config) == "python" and version_path is not None:
        from tritonlite.backends.python.backend import complete_python_config

        return complete_python_config(config, model_path, version_path)
    return config


__all__ = ["BackendInstance", "BackendSettings", "InstanceSpec", "auto_complete", "create_instance"]
