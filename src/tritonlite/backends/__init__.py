"""Backends: what runs a model. Each backend creates instances behind one small interface."""

from __future__ import annotations

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.core.errors import unavailable


def create_instance(backend: str, spec: InstanceSpec) -> BackendInstance:
    """Create (and initialize) one instance of a model with the named backend."""
    if backend == "python":
        from tritonlite.backends.python.backend import PythonInstance
        from tritonlite.backends.python.process_instance import PROCESS, PythonProcessInstance, instance_mode

        if instance_mode(spec) == PROCESS:  # TRITONLITE_INSTANCE_MODE: "thread" (default) or "process"
            return PythonProcessInstance(spec)
        return PythonInstance(spec)
    raise unavailable(f"unable to find backend library for backend '{backend}'")


__all__ = ["BackendInstance", "InstanceSpec", "create_instance"]
