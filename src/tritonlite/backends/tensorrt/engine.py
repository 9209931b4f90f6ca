"""The engine-independent part of the TensorRT backend: plain data and functions, no tensorrt import.

- ``describe_engine`` reads a TensorRT 10 engine (``num_io_tensors``, ``get_tensor_name``,
  ``get_tensor_mode``, ``get_tensor_dtype``, ``get_tensor_shape``, ``get_tensor_profile_shape``)
  into an ``EngineInfo``; everything else works on that description, so it is tested on CPU with
  fake engines;
- data types, the maximum batch size the optimization profiles allow, Triton's config
  auto-complete, the binding plan (config tensor -> engine tensor, checked), the choice of the
  profile that fits a batch, and the sizes of device buffers (grown, never shrunk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tritonlite.backends.framework import compare_dims
from tritonlite.core.errors import internal, invalid_arg
from tritonlite.core.reshape import shape_text
from tritonlite.protocol import model_config_pb2 as mc

# TensorRT DataType member names -> config data types (Triton's table)
TRT_TO_CONFIG = {
    "FLOAT": "TYPE_FP32",
    "HALF": "TYPE_FP16",
    "BF16": "TYPE_BF16",
    "INT8": "TYPE_INT8",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
}

# config data type -> numpy dtype of the host buffer (BF16 travels as its 2-byte words)
CONFIG_TO_NUMPY = {
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_BF16": np.dtype(np.uint16),
    "TYPE_INT8": np.dtype(np.int8),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_BOOL": np.dtype(np.bool_),
    "TYPE_UINT8": np.dtype(np.uint8),
}


def dtype_name(dtype: Any) -> str:
    """A TensorRT DataType's member name (``DataType.FLOAT`` -> ``FLOAT``)."""
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).rsplit(".", 1)[-1]


@dataclass(frozen=True)
class EngineTensor:
    name: str
    is_input: bool
    dtype: str  # TensorRT DataType name
    shape: tuple[int, ...]  # -1 for dynamic dimensions
    is_shape_tensor: bool = False

    @property
    def config_type(self) -> str | None:
        return TRT_TO_CONFIG.get(self.dtype)


Range = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # (min, opt, max)


@dataclass
class EngineInfo:
    tensors: list[EngineTensor]
    # profiles[i][input name] = (min, opt, max) shapes of that input in profile i
    profiles: list[dict[str, Range]] = field(default_factory=list)

    @property
    def inputs(self) -> list[EngineTensor]:
        return [t for t in self.tensors if t.is_input]

    @property
    def outputs(self) -> list[EngineTensor]:
        return [t for t in self.tensors if not t.is_input]

    def tensor(self, name: str) -> EngineTensor | None:
        for t in self.tensors:
            if t.name == name:
                return t
        return None

    def input_range(self, profile: int, name: str) -> Range:
        """(min, opt, max) of an input in a profile; a static input's own shape when profiles say nothing."""
        if profile < len(self.profiles) and name in self.profiles[profile]:
            return self.profiles[profile][name]
        shape = self.tensor(name).shape
        return shape, shape, shape


def describe_engine(engine: Any, trt: Any) -> EngineInfo:
    """Read a TensorRT 10 ``ICudaEngine`` (or anything with its API) into an ``EngineInfo``."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        is_shape = bool(engine.is_shape_inference_io(name)) if hasattr(engine, "is_shape_inference_io") else False
        tensors.append(
            EngineTensor(
                name=name,
                is_input=is_input,
                dtype=dtype_name(engine.get_tensor_dtype(name)),
                shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
                is_shape_tensor=is_shape,
            )
        )
    profiles = []
    for profile in range(max(int(getattr(engine, "num_optimization_profiles", 0)), 0)):
        ranges: dict[str, Range] = {}
        for tensor in tensors:
            if tensor.is_input and not tensor.is_shape_tensor:
                low, opt, high = engine.get_tensor_profile_shape(tensor.name, profile)
                ranges[tensor.name] = (
                    tuple(int(d) for d in low),
                    tuple(int(d) for d in opt),
                    tuple(int(d) for d in high),
                )
        profiles.append(ranges)
    return EngineInfo(tensors, profiles)


# ---- batching and auto-complete ---------------------------------------------------------------


def supports_batching(info: EngineInfo) -> bool:
    """Every input and output has a dynamic first dimension (tritonlite's test; see max_batch_size)."""
    return all(len(t.shape) > 0 and t.shape[0] == -1 for t in info.tensors if not t.is_shape_tensor)


def profile_max_batch(info: EngineInfo, profile: int) -> int:
    """The largest batch a profile accepts: the smallest max first dimension over its inputs."""
    largest = None
    for tensor in info.inputs:
        if tensor.is_shape_tensor:
            continue
        high = info.input_range(profile, tensor.name)[2]
        if not high:
            return 0
        largest = high[0] if largest is None else min(largest, high[0])
    return largest or 0


def max_batch_size(info: EngineInfo, profiles: list[int]) -> int:
    """Triton's rule: the largest batch over the instance groups' profiles (profile 0 by default).

    An engine whose tensors do not all have a dynamic first dimension does not batch (0).
    """
    if not supports_batching(info):
        return 0
    return max((profile_max_batch(info, p) for p in (profiles or [0])), default=0)


def profile_indices(config: mc.ModelConfig, profile_count: int, model_name: str) -> list[int]:
    """The profiles the instance groups name (``profile: ["0", "1"]``); [0] when none does."""
    found: list[int] = []
    for group in config.instance_group:
        found.extend(group_profiles(group, profile_count, model_name))
    return sorted(set(found)) or [0]


def group_profiles(group: Any, profile_count: int, model_name: str) -> list[int]:
    indices = []
    for text in group.profile:
        try:
            index = int(text)
        except ValueError:
            index = -1
        if index < 0 or index >= max(profile_count, 1):
            raise invalid_arg(
                f"unable to autofill for '{model_name}', configuration specified invalid profile {text} . "
                f"Number of profiles supported by TensorRT engine: {profile_count}"
            )
        indices.append(index)
    return indices


def complete_from_engine(config: mc.ModelConfig, info: EngineInfo, model_name: str) -> None:
    """Triton's TensorRT auto-complete, in place: max_batch_size, dynamic_batching, inputs, outputs.

    The engine stores its maximum batch (the optimization profiles), so default-max-batch-size
    does not apply; a config max_batch_size above what the engine allows is an error.
    """
    engine_max = max_batch_size(info, profile_indices(config, len(info.profiles), model_name))
    if config.max_batch_size == 0:
        config.max_batch_size = engine_max
    elif config.max_batch_size > engine_max:
        raise internal(
            f"autofill failed for model '{model_name}': configuration specified max-batch "
            f"{config.max_batch_size} but TensorRT engine only supports max-batch {engine_max}"
        )
    if (
        config.max_batch_size > 1
        and not config.HasField("dynamic_batching")
        and not config.HasField("sequence_batching")
    ):
        config.dynamic_batching.SetInParent()
    for field_name, tensors in (("input", info.inputs), ("output", info.outputs)):
        target = getattr(config, field_name)
        if len(target) == 0:
            for tensor in tensors:
                _fill(target.add(name=tensor.name), tensor, config.max_batch_size, model_name)
            continue
        known = {t.name: t for t in tensors}
        for entry in target:  # fill what a partial entry leaves out
            tensor = known.get(entry.name)
            if tensor is None:
                raise invalid_arg(
                    f"unexpected inference {field_name} '{entry.name}', allowed {field_name}s are: "
                    f"{', '.join(sorted(known))}"
                )
            _fill(entry, tensor, config.max_batch_size, model_name)


def _fill(entry: Any, tensor: EngineTensor, batch: int, model_name: str) -> None:
    """Set what an entry leaves out (data type, dims): explicit values are kept."""
    if entry.data_type == mc.TYPE_INVALID:
        if tensor.config_type is None:
            raise invalid_arg(f"unable to autofill for '{model_name}', unsupported data-type '{tensor.dtype}'")
        entry.data_type = mc.DataType.Value(tensor.config_type)
    dims = tensor.shape[1:] if batch > 0 else tensor.shape
    if len(entry.dims) == 0:
        if dims:
            entry.dims.extend(dims)
        else:
            entry.dims.append(1)
            entry.reshape.SetInParent()
    if tensor.is_shape_tensor:
        entry.is_shape_tensor = True


# ---- the binding plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """A config tensor bound to the engine tensor of the same name."""

    name: str
    is_input: bool
    config_type: str
    dtype: np.dtype
    dims: tuple[int, ...]  # config dims
    model_dims: tuple[int, ...]  # reshape, or dims: what the engine sees without the batch dimension


def plan_bindings(config: mc.ModelConfig, info: EngineInfo, model_name: str) -> list[Binding]:
    """Check the config's tensors against the engine (names, types, shapes); one Binding each."""
    for tensor in info.tensors:
        if tensor.is_shape_tensor:
            raise invalid_arg(
                f"unable to load model '{model_name}', tensor '{tensor.name}' is a shape tensor; tritonlite's "
                "TensorRT backend supports execution tensors only"
            )
    bindings = []
    engine_inputs = {t.name: t for t in info.inputs}
    engine_outputs = {t.name: t for t in info.outputs}
    if len(config.input) != len(engine_inputs):
        raise invalid_arg(
            f"unable to load model '{model_name}', configuration expects {len(config.input)} inputs, "
            f"model provides {len(engine_inputs)}"
        )
    for kind, entries, known in (("input", config.input, engine_inputs), ("output", config.output, engine_outputs)):
        for entry in entries:
            tensor = known.get(entry.name)
            if tensor is None:
                raise invalid_arg(
                    f"unexpected inference {kind} '{entry.name}', allowed {kind}s are: {', '.join(sorted(known))}"
                )
            config_type = mc.DataType.Name(entry.data_type)
            if tensor.config_type is None:
                raise internal(f"unsupported datatype {tensor.dtype} for {kind} '{entry.name}' of model '{model_name}'")
            if config_type != tensor.config_type:
                raise invalid_arg(
                    f"unable to load model '{model_name}', configuration expects datatype {config_type} for {kind} "
                    f"'{entry.name}', model provides {tensor.config_type}"
                )
            model_dims = tuple(entry.reshape.shape) if entry.HasField("reshape") else tuple(entry.dims)
            compare_dims(model_name, entry.name, tensor.shape, model_dims, config.max_batch_size, exact=False)
            bindings.append(
                Binding(
                    name=entry.name,
                    is_input=kind == "input",
                    config_type=config_type,
                    dtype=CONFIG_TO_NUMPY[config_type],
                    dims=tuple(entry.dims),
                    model_dims=model_dims,
                )
            )
    return bindings


# ---- execution: profile choice, buffer sizes ---------------------------------------------------


def fits(shape: tuple[int, ...], ranges: Range) -> bool:
    low, _, high = ranges
    return len(shape) == len(low) and all(a <= s <= b for s, a, b in zip(shape, low, high, strict=True))


def select_profile(info: EngineInfo, shapes: dict[str, tuple[int, ...]], allowed: list[int], model_name: str) -> int:
    """The allowed profile that accepts every input shape, closest to its opt shapes (lowest index on ties)."""
    best: tuple[int, int] | None = None
    for profile in allowed:
        distance = 0
        for name, shape in shapes.items():
            ranges = info.input_range(profile, name)
            if not fits(shape, ranges):
                break
            distance += sum(abs(s - o) for s, o in zip(shape, ranges[1], strict=True))
        else:
            if best is None or distance < best[0]:
                best = (distance, profile)
    if best is None:
        given = ", ".join(f"'{name}' {shape_text(shape)}" for name, shape in shapes.items())
        ranges = "; ".join(
            f"profile {p}: "
            + ", ".join(
                f"'{n}' {shape_text(info.input_range(p, n)[0])} to {shape_text(info.input_range(p, n)[2])}"
                for n in shapes
            )
            for p in allowed
        )
        raise invalid_arg(
            f"no optimization profile of model '{model_name}' accepts the input shapes {given} ({ranges})"
        )
    return best[1]


def byte_size(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for d in shape:
        if d < 0:
            raise internal(f"cannot size a buffer for shape {shape_text(shape)}: it has a dynamic dimension")
        count *= d
    return count * dtype.itemsize


ALIGNMENT = 256


def grown_capacity(current: int, needed: int) -> int:
    """The new size of a device buffer that must hold ``needed`` bytes: at least double, aligned."""
    if needed <= current:
        return current
    size = max(needed, current * 2, ALIGNMENT)
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


class DeviceBuffers:
    """One device buffer per tensor name, reused across executes and grown when a batch needs more."""

    def __init__(self, memory: Any) -> None:
        self.memory = memory
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity in bytes)

    def ensure(self, name: str, nbytes: int) -> int:
        pointer, capacity = self.buffers.get(name, (0, 0))
        if pointer and nbytes <= capacity:
            return pointer
        size = grown_capacity(capacity, max(nbytes, 1))
        if pointer:
            self.memory.free(pointer)
            del self.buffers[name]
        pointer = self.memory.alloc(size)
        self.buffers[name] = (pointer, size)
        return pointer

    def release(self) -> None:
        for pointer, _ in self.buffers.values():
            self.memory.free(pointer)
        self.buffers.clear()
