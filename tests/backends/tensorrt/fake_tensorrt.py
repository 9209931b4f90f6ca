"""Stand-ins for the TensorRT 10 Python API and a CUDA binding, so the backend's logic runs on CPU.

``FakeEngine`` answers the engine calls the backend makes; ``FakeContext`` "executes" with a
Python function over the bytes that ``FakeMemory`` holds for each device pointer.
"""

from __future__ import annotations

import enum
from types import SimpleNamespace

import numpy as np


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8


trt = SimpleNamespace(TensorIOMode=TensorIOMode, DataType=DataType)

NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32, DataType.INT64: np.int64}


class FakeMemory:
    """Device memory as host byte arrays, keyed by made-up pointers."""

    def __init__(self) -> None:
        self.storage: dict[int, np.ndarray] = {}
        self.next_pointer = 0x1000
        self.allocations = 0
        self.frees = 0
        self.devices: list[int] = []
        self.streams: list[int] = []
        self.synchronized = 0

    def set_device(self, device: int) -> None:
        self.devices.append(device)

    def create_stream(self) -> int:
        self.streams.append(len(self.streams) + 7)
        return self.streams[-1]

    def destroy_stream(self, stream: int) -> None:
        self.streams.remove(stream)

    def alloc(self, nbytes: int) -> int:
        pointer = self.next_pointer
        self.next_pointer += nbytes + 0x1000
        self.storage[pointer] = np.zeros(nbytes, np.uint8)
        self.allocations += 1
        return pointer

    def free(self, pointer: int) -> None:
        del self.storage[pointer]
        self.frees += 1

    def to_device(self, pointer: int, host: np.ndarray, stream: int) -> None:
        raw = np.ascontiguousarray(host).view(np.uint8).reshape(-1)
        self.storage[pointer][: raw.size] = raw

    def to_host(self, host: np.ndarray, pointer: int, stream: int) -> None:
        raw = host.view(np.uint8).reshape(-1)
        raw[:] = self.storage[pointer][: raw.size]

    def synchronize(self, stream: int) -> None:
        self.synchronized += 1


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.profile_calls: list[int] = []
        self.executions = 0

    def set_optimization_profile_async(self, profile: int, stream: int) -> bool:
        self.profile_calls.append(profile)
        return True

    def set_input_shape(self, name: str, shape) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.engine.output_shape(name, self.shapes)

    def set_tensor_address(self, name: str, pointer: int) -> None:
        self.addresses[name] = pointer

    def execute_async_v3(self, stream: int) -> bool:
        self.executions += 1
        memory = self.engine.memory
        inputs = {}
        for name, shape in self.shapes.items():
            dtype = NUMPY[self.engine.dtypes[name]]
            count = int(np.prod(shape))
            raw = memory.storage[self.addresses[name]][: count * np.dtype(dtype).itemsize]
            inputs[name] = raw.view(dtype).reshape(shape)
        for name, value in self.engine.compute(inputs).items():
            if name in self.addresses:
                memory.to_device(self.addresses[name], np.asarray(value, NUMPY[self.engine.dtypes[name]]), stream)
        return True


class FakeEngine:
    """tensors: (name, is_input, DataType, shape); profiles: [{input: (min, opt, max)}]."""

    def __init__(self, tensors, profiles, compute, output_shape, memory: FakeMemory | None = None) -> None:
        self.tensors = tensors
        self.profiles = profiles
        self.dtypes = {name: dtype for name, _, dtype, _ in tensors}
        self.compute = compute
        self.output_shape = output_shape
        self.memory = memory
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def _find(self, name):
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if self._find(name)[1] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._find(name)[2]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[3]

    def is_shape_inference_io(self, name: str) -> bool:
        return False

    def get_tensor_profile_shape(self, name: str, profile: int):
        return list(self.profiles[profile][name])

    def create_execution_context(self) -> FakeContext:
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


def doubling_engine(width: int = 4, memory: FakeMemory | None = None, profiles=None, shape=None) -> FakeEngine:
    """OUT = IN * 2 for IN of shape [-1, width] (or ``shape``), two profiles by default."""
    shape = shape or (-1, width)
    profiles = profiles or [
        {"IN": ((1, *shape[1:]), (2, *shape[1:]), (4, *shape[1:]))},
        {"IN": ((5, *shape[1:]), (8, *shape[1:]), (16, *shape[1:]))},
    ]
    return FakeEngine(
        [("IN", True, DataType.FLOAT, shape), ("OUT", False, DataType.FLOAT, shape)],
        profiles,
        compute=lambda inputs: {"OUT": inputs["IN"] * 2},
        output_shape=lambda name, shapes: shapes["IN"],
        memory=memory,
    )
