"""Device memory and streams for the TensorRT backend, from whichever CUDA binding is installed.

cuda-python (``cuda.bindings.runtime``, or the older ``cuda.cudart``) first, then CuPy's runtime
module. Each offers the same few calls on raw pointers and stream handles, which is all
TensorRT's ``set_tensor_address`` and ``execute_async_v3`` need. Imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritonlite.core.errors import TritonError, internal

HOST_TO_DEVICE = 1  # cudaMemcpyHostToDevice
DEVICE_TO_HOST = 2  # cudaMemcpyDeviceToHost


class CudaPythonMemory:
    """cuda-python's runtime API (every call returns ``(error, value...)``)."""

    name = "cuda-python"

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def _check(self, result: Any, what: str) -> Any:
        error = result[0] if isinstance(result, tuple) else result
        if int(error) != 0:
            raise internal(f"CUDA error in {what}: {error}")
        if isinstance(result, tuple) and len(result) > 1:
            return result[1]
        return None

    def set_device(self, device: int) -> None:
        self._check(self.rt.cudaSetDevice(device), "cudaSetDevice")

    def create_stream(self) -> int:
        stream = self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreate")
        return int(stream)

    def destroy_stream(self, stream: int) -> None:
        self.rt.cudaStreamDestroy(stream)

    def alloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, pointer: int) -> None:
        self.rt.cudaFree(pointer)

    def to_device(self, pointer: int, host: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def to_host(self, host: np.ndarray, pointer: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: int) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


class CupyMemory:
    """CuPy's thin runtime module (raises ``CUDARuntimeError`` on failure)."""

    name = "cupy"

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    def set_device(self, device: int) -> None:
        self.rt.setDevice(device)

    def create_stream(self) -> int:
        return int(self.rt.streamCreateWithFlags(1))  # cudaStreamNonBlocking

    def destroy_stream(self, stream: int) -> None:
        self.rt.streamDestroy(stream)

    def alloc(self, nbytes: int) -> int:
        return int(self.rt.malloc(nbytes))

    def free(self, pointer: int) -> None:
        self.rt.free(pointer)

    def to_device(self, pointer: int, host: np.ndarray, stream: int) -> None:
        self.rt.memcpyAsync(pointer, host.ctypes.data, host.nbytes, HOST_TO_DEVICE, stream)

    def to_host(self, host: np.ndarray, pointer: int, stream: int) -> None:
        self.rt.memcpyAsync(host.ctypes.data, pointer, host.nbytes, DEVICE_TO_HOST, stream)

    def synchronize(self, stream: int) -> None:
        self.rt.streamSynchronize(stream)


def load_memory() -> Any:
    """The first CUDA binding that imports; UNAVAILABLE with the install hint when none does."""
    problems = []
    try:
        from cuda.bindings import runtime as cudart

        return CudaPythonMemory(cudart)
    except ImportError as exc:
        problems.append(f"cuda-python: {exc}")
    try:
        from cuda import cudart  # cuda-python before 12.6

        return CudaPythonMemory(cudart)
    except ImportError:
        pass
    try:
        from cupy.cuda import runtime

        return CupyMemory(runtime)
    except ImportError as exc:
        problems.append(f"cupy: {exc}")
    from tritonlite.core.errors import unavailable

    raise unavailable(
        "the tensorrt backend needs cuda-python or cupy for device memory (" + "; ".join(problems) + "); "
        "install it with: pip install tritonlite[tensorrt]"
    )


def cuda_failure(exc: BaseException) -> TritonError:
    return internal(f"CUDA failure: {type(exc).__name__}: {exc}")
