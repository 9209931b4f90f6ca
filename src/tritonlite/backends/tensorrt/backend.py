"""Triton's TensorRT backend on the TensorRT 10 Python API: ``model.plan`` engines on a GPU.

Per instance: one engine, one execution context, one CUDA stream and one device buffer per
tensor (reused, grown when a batch needs more). An execute gathers the batch, picks the
optimization profile that fits its shapes, sets input shapes and tensor addresses, runs
``execute_async_v3`` and copies the outputs back. The engine-independent logic lives in
``engine.py``; tensorrt and the CUDA binding are imported only when a TensorRT model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.framework import TensorInstance, backend_missing
from tritonlite.backends.tensorrt.cuda import load_memory
from tritonlite.backends.tensorrt.engine import (
    DeviceBuffers,
    EngineInfo,
    byte_size,
    complete_from_engine,
    describe_engine,
    group_profiles,
    plan_bindings,
    select_profile,
)
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.protocol import model_config_pb2 as mc

DEFAULT_FILENAME = "model.plan"


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise backend_missing("tensorrt", "tensorrt", "tensorrt", exc) from None
    if not hasattr(tensorrt, "Runtime"):  # e.g. a stray folder named tensorrt on sys.path
        raise backend_missing("tensorrt", "tensorrt", "tensorrt", ImportError("no tensorrt.Runtime"))
    return tensorrt


def load_engine(trt: Any, path: Path) -> tuple[Any, Any]:
    """(runtime, engine) from a serialized plan; INTERNAL when TensorRT cannot deserialize it."""
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise internal(f"unable to load plan file to auto complete config: {path}")
    return runtime, engine


def complete_tensorrt_config(
    config: mc.ModelConfig, model_path: Path, version_path: Path | None, settings: dict[str, dict[str, str]]
) -> mc.ModelConfig:
    """Auto-complete from the engine (max batch from its profiles, inputs, outputs); GPU instances."""
    completed = mc.ModelConfig()
    completed.CopyFrom(config)
    name = config.name or model_path.name
    if len(completed.instance_group) == 0:  # TensorRT runs on GPUs only: no CPU default
        completed.instance_group.add(name=name, kind=mc.ModelInstanceGroup.KIND_GPU)
    for group in completed.instance_group:
        if group.kind == mc.ModelInstanceGroup.KIND_AUTO:
            group.kind = mc.ModelInstanceGroup.KIND_GPU
    if version_path is None:
        return completed
    path = version_path / (config.default_model_filename or DEFAULT_FILENAME)
    if not path.is_file():
        return completed  # reported when the version loads
    trt = import_tensorrt()
    _, engine = load_engine(trt, path)
    complete_from_engine(completed, describe_engine(engine, trt), name)
    return completed


def instance_group(config: mc.ModelConfig, instance_name: str) -> Any:
    """The instance group an instance belongs to (its name is ``<group name>_<index>``)."""
    best = None
    for group in config.instance_group:
        if instance_name.startswith(f"{group.name}_") and (best is None or len(group.name) > len(best.name)):
            best = group
    return best


class TensorRTInstance(TensorInstance):
    """One execution context and stream on the instance's GPU.

    ``trt``, ``memory`` and ``engine`` may be given (tests pass fakes); by default tensorrt and a
    CUDA binding are imported and the plan file is deserialized.
    """

    may_run_inline = False  # CUDA work stays on the instance's own thread

    def __init__(self, spec: InstanceSpec, trt: Any = None, memory: Any = None, engine: Any = None) -> None:
        super().__init__(spec)
        name = spec.model_name
        if spec.kind != "GPU":
            raise invalid_arg(
                f"unable to load model '{name}', TensorRT backend supports only KIND_GPU instances; instance "
                f"'{spec.instance_name}' is KIND_{spec.kind}"
            )
        self.trt = trt or import_tensorrt()
        self.memory = memory or load_memory()
        self.device = spec.device_id
        self.memory.set_device(self.device)
        if engine is None:
            path = spec.version_path / (spec.config.default_model_filename or DEFAULT_FILENAME)
            if not path.is_file():
                raise unavailable(f"unable to find '{path}' for model instance '{name}'")
            self.runtime, engine = load_engine(self.trt, path)
        self.engine = engine
        self.info: EngineInfo = describe_engine(engine, self.trt)
        self.bindings = {b.name: b for b in plan_bindings(spec.config, self.info, name)}
        group = instance_group(spec.config, spec.instance_name)
        self.profiles = (group_profiles(group, len(self.info.profiles), name) if group is not None else []) or [0]
        self.context = engine.create_execution_context()
        if self.context is None:
            raise internal(f"unable to create TensorRT execution context for '{spec.instance_name}'")
        self.stream = self.memory.create_stream()
        self.profile = -1
        self.buffers = DeviceBuffers(self.memory)

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        memory, context = self.memory, self.context
        memory.set_device(self.device)
        shapes = {name: tuple(array.shape) for name, array in inputs.items()}
        profile = select_profile(self.info, shapes, self.profiles, self.model_name)
        if profile != self.profile:
            if not context.set_optimization_profile_async(profile, self.stream):
                raise internal(f"unable to set optimization profile {profile} for '{self.spec.instance_name}'")
            self.profile = profile
        hosts = {}
        for name, array in inputs.items():
            binding = self.bindings[name]
            host = np.ascontiguousarray(array, dtype=binding.dtype)
            hosts[name] = host  # kept alive until the stream is synchronized
            if not context.set_input_shape(name, host.shape):
                raise invalid_arg(f"TensorRT rejected shape {list(host.shape)} for input '{name}'")
            pointer = self.buffers.ensure(name, host.nbytes)
            memory.to_device(pointer, host, self.stream)
            context.set_tensor_address(name, pointer)
        results = {}
        for name, binding in self.bindings.items():
            if binding.is_input:
                continue
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            pointer = self.buffers.ensure(name, byte_size(shape, binding.dtype))
            context.set_tensor_address(name, pointer)  # every output needs an address, asked for or not
            if name in outputs:
                results[name] = (pointer, np.empty(shape, dtype=binding.dtype))
        if not context.execute_async_v3(self.stream):
            raise internal(f"TensorRT execute failure for '{self.spec.instance_name}'")
        for pointer, host in results.values():
            memory.to_host(host, pointer, self.stream)
        memory.synchronize(self.stream)
        return {name: host for name, (_, host) in results.items()}

    def describe_error(self, exc: BaseException) -> TritonError:
        return internal(f"TensorRT execute failure: {type(exc).__name__}: {exc}")

    def finalize(self) -> None:
        try:
            self.memory.set_device(self.device)
            self.memory.synchronize(self.stream)
        finally:
            self.buffers.release()
            self.memory.destroy_stream(self.stream)
            self.context = None
            self.engine = None
