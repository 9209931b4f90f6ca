"""Both kinds of regions behind one lookup, as the codecs need them.

A region is in use (``usage.py``) while an input read from it is alive (the array the codec
gets holds the use) and, for an output, from the request's submission until its response has
been written (``hold_outputs``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

import numpy as np

from tritonlite.core.errors import internal, not_found
from tritonlite.core.types import InferRequest
from tritonlite.sharedmem.cuda import CudaSharedMemory
from tritonlite.sharedmem.system import SystemSharedMemory
from tritonlite.sharedmem.usage import RegionUsage


class OutputHold:
    """The uses a request's output regions hold until its response has been written into them."""

    __slots__ = ("uses", "_released")

    def __init__(self, uses: list[tuple[RegionUsage, str]]) -> None:
        self.uses = uses
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for usage, name in self.uses:
            usage.release(name)

    def release_after_answer(self, _future: object = None) -> None:
        """As a done callback of the request's future: release one loop turn later. The frontends
        write outputs in callbacks that run in this turn (the HTTP exchange's reader, called by the
        Submission's own first callback; the gRPC handler's task, woken by a later callback)."""
        asyncio.get_running_loop().call_soon(self.release)


class SharedMemory:
    """System and CUDA shared memory regions; names are looked up in that order."""

    def __init__(self) -> None:
        self.system = SystemSharedMemory()
        self.cuda = CudaSharedMemory()

    def read(self, region: str, offset: int, byte_size: int) -> np.ndarray:
        """The bytes of an input as a uint8 array: a view into system memory, or a host copy of CUDA
        memory. The region is in use until the array (and every view of it) is freed."""
        if region in self.system.regions:
            chunk = np.frombuffer(self.system.view(region, offset, byte_size), np.uint8)
            usage = self.system.usage
        elif region in self.cuda.regions:
            chunk = self.cuda.read(region, offset, byte_size)
            usage = self.cuda.usage
        else:
            raise not_found(f"Unable to find shared memory region: '{region}'")
        usage.acquire(region)
        weakref.finalize(chunk, usage.release, region)
        return chunk

    def hold_outputs(self, request: InferRequest) -> OutputHold | None:
        """Mark the regions ``request``'s outputs are to be written into as in use (None: it names none)."""
        if not request.outputs or not (self.system.regions or self.cuda.regions):
            return None
        uses = []
        for name in _output_regions(request.outputs):
            if name in self.system.regions:
                uses.append((self.system.usage, name))
            elif name in self.cuda.regions:
                uses.append((self.cuda.usage, name))
        if not uses:
            return None
        for usage, name in uses:
            usage.acquire(name)
        return OutputHold(uses)

    def check_output(self, region: str, offset: int, byte_size: int) -> None:
        """Refuse an output region that does not exist or does not hold offset + byte size."""
        if region in self.system.regions:
            self.system.view(region, offset, byte_size)
        elif region in self.cuda.regions:
            self.cuda._region(region, offset, byte_size)
        else:
            raise not_found(f"Unable to find shared memory region: '{region}'")

    def write(self, output: str, region: str, offset: int, byte_size: int, data: bytes) -> None:
        """Write an output into its region, with Triton's error when the region is too small."""
        if len(data) > byte_size:
            raise internal(
                f"shared memory size specified with the request for output '{output}' ({byte_size} bytes) "
                f"should be at least {len(data)} bytes to hold the results"
            )
        if region in self.system.regions:
            self.system.view(region, offset, len(data))[:] = data
        elif region in self.cuda.regions:
            self.cuda.write(region, offset, data)
        else:
            raise not_found(f"Unable to find shared memory region: '{region}'")

    def close(self) -> None:
        self.system.close()
        self.cuda.close()


def _output_regions(outputs: Iterable) -> list[str]:
    """The region names the codecs put in an output's ``shm`` parameter (region, offset, byte size)."""
    names = []
    for output in outputs:
        parameters = output.parameters
        if parameters:
            region = parameters.get("shm")
            if region:
                names.append(region[0])
    return names
