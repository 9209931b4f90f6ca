"""Backends: what runs a model. Each backend creates instances behind one small interface.

Which backends exist, and where their code lives, is ``registry.py``; this module creates
instances and auto-completes configs through it.
"""

from __future__ import annotations

from pathlib import Path

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.backends.registry import BACKENDS, BackendSettings, backend_of, by_name
from tritonlite.core.errors import unavailable
from tritonlite.protocol import model_config_pb2 as mc


def create_instance(backend: str, spec: InstanceSpec) -> BackendInstance:
    """Create (and initialize) one instance of a model with the named backend."""
    found = by_name(backend)
    if found is None or not found.instance:
        raise unavailable(f"unable to find backend library for backend '{backend}'")
    return found.code(found.instance)(spec)


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
    config = complete_backend_fields(config, version_path)
    backend = by_name(backend_of(config))
    if backend is None or not backend.complete:
        return config
    return backend.code(backend.complete)(config, model_path, version_path, settings)


def complete_backend_fields(config: mc.ModelConfig, version_path: Path | None) -> mc.ModelConfig:
    """Triton's backend detection: fill ``backend``, ``platform`` and ``default_model_filename``.

    A config without a backend gets one from its platform, its default_model_filename, or
    (with neither) the model file or folder in the version folder (model.savedmodel, model.plan,
    model.onnx, model.pt); a framework backend without a platform gets its platform.
    """
    for backend in BACKENDS:
        if not backend.framework:
            continue
        platform, filename = backend.platforms[0], backend.model_filename
        if not config.backend:
            if config.platform == platform or config.default_model_filename == filename:
                config = _copy_with(config, backend=backend.name)
            elif (
                not config.platform
                and not config.default_model_filename
                and version_path is not None
                and backend.has_model_at(version_path)
            ):
                config = _copy_with(config, backend=backend.name)
        if config.backend == backend.name:
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
