"""CUDA shared memory regions: device buffers a client shares through a CUDA IPC handle.

Registration opens the IPC handle (CuPy, imported lazily) on the given device. CPU backends
get a host copy of an input; outputs are copied into the device buffer. Without CUDA (no
CuPy, no GPU) registration fails with Triton's error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg, not_found
from tritonlite.sharedmem.usage import RegionUsage

# Triton's answer when a handle cannot be opened (also on a server without CUDA)
REGISTER_FAILED = "failed to register shared memory region: invalid args"


@dataclass
class CudaRegion:
    name: str
    device_id: int
    byte_size: int
    pointer: int
    memory: Any  # keeps the opened IPC mapping alive

    def status(self) -> dict:
        return {"name": self.name, "device_id": self.device_id, "byte_size": self.byte_size}


def _cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:
        return None


class CudaSharedMemory:
    """The registered CUDA shared memory regions of the server."""

    def __init__(self) -> None:
        self.regions: dict[str, CudaRegion] = {}
        self._lock = threading.Lock()
        self.usage = RegionUsage("cuda")

    def register(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        with self._lock:
            if name in self.regions:
                raise TritonError(ErrorKind.ALREADY_EXISTS, f"shared memory region '{name}' already in manager")
            cupy = _cupy()
            if cupy is None or byte_size <= 0:
                raise invalid_arg(REGISTER_FAILED)
            try:
                with cupy.cuda.Device(device_id):
                    pointer = cupy.cuda.runtime.ipcOpenMemHandle(bytes(raw_handle))
            except Exception:
                raise invalid_arg(REGISTER_FAILED) from None
            self.regions[name] = CudaRegion(name, device_id, byte_size, pointer, None)

    def unregister(self, name: str = "") -> None:
        """Unregister one region, or every region when ``name`` is empty; regions in use are refused
        with Triton's error."""
        with self._lock:
            self.usage.unregister(name, self.regions, self._remove)

    def _remove(self, name: str) -> None:
        region = self.regions.pop(name, None)
        if region is not None:
            cupy = _cupy()
            if cupy is not None:
                try:
                    with cupy.cuda.Device(region.device_id):
                        cupy.cuda.runtime.ipcCloseMemHandle(region.pointer)
                except Exception:
                    pass

    def status(self, name: str = "") -> list[dict]:
        if name:
            region = self.regions.get(name)
            if region is None:
                raise not_found(f"Unable to find cuda shared memory region: '{name}'")
            return [region.status()]
        return [region.status() for region in self.regions.values()]

    def _region(self, name: str, offset: int, byte_size: int) -> CudaRegion:
        region = self.regions.get(name)
        if region is None:
            raise not_found(f"Unable to find shared memory region: '{name}'")
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise invalid_arg(f"Invalid offset + byte size for shared memory region: '{name}'")
        return region

    def device_array(self, name: str, offset: int, byte_size: int):
        """A CuPy uint8 array over the region's bytes (no copy), for GPU backends."""
        region = self._region(name, offset, byte_size)
        cupy = _cupy()
        memory = cupy.cuda.UnownedMemory(region.pointer + offset, byte_size, region, region.device_id)
        return cupy.ndarray((byte_size,), dtype=cupy.uint8, memptr=cupy.cuda.MemoryPointer(memory, 0))

    def read(self, name: str, offset: int, byte_size: int) -> np.ndarray:
        """A host copy of the region's bytes (for CPU backends), as a uint8 array."""
        region = self._region(name, offset, byte_size)
        cupy = _cupy()
        host = np.empty(byte_size, dtype=np.uint8)
        with cupy.cuda.Device(region.device_id):
            cupy.cuda.runtime.memcpy(host.ctypes.data, region.pointer + offset, byte_size, 2)  # device -> host
        return host

    def write(self, name: str, offset: int, data: bytes | memoryview) -> None:
        region = self._region(name, offset, len(data))
        cupy = _cupy()
        host = np.frombuffer(data, dtype=np.uint8)
        with cupy.cuda.Device(region.device_id):
            cupy.cuda.runtime.memcpy(region.pointer + offset, host.ctypes.data, len(host), 1)  # host -> device

    def close(self) -> None:
        """Close every region at shutdown, in use or not."""
        with self._lock:
            for name in list(self.regions):
                self._remove(name)
