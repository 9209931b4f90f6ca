"""Both kinds of regions behind one lookup, as the codecs need them.

A region is in use (``usage.py``) from the decode of a request that names it until its response
has been written, as in Triton: ``read`` gives each input a ``Use`` of its region, and ``hold``
(called when the request is submitted, right after its decode) takes those of its inputs and
adds those of its output regions, to end once the answer is written. A read that no request
takes (its decode failed) ends its use when its array is freed.
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


class Use:
    """One use of a region; it ends once, whoever ends it first."""

    __slots__ = ("usage", "name", "ended")

    def __init__(self, usage: RegionUsage, name: str) -> None:
        self.usage = usage
        self.name = name
        self.ended = False
        usage.acquire(name)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.usage.release(self.name)


class RegionHold:
    """The uses of the regions one request reads and writes, until its answer has been written."""

    __slots__ = ("uses",)

    def __init__(self, uses: list[Use]) -> None:
        self.uses = uses

    def release(self) -> None:
        for use in self.uses:
            use.end()

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
        # id of each array ``read`` gave that is still alive -> (the array, weakly; its use)
        self._reads: dict[int, tuple[weakref.ref, Use]] = {}

    def read(self, region: str, offset: int, byte_size: int) -> np.ndarray:
        """The bytes of an input as a uint8 array: a view into system memory, or a host copy of CUDA
        memory. The region is in use until the request's answer is written (``hold``), or until the
        array is freed when no request takes it."""
        if region in self.system.regions:
            chunk = np.frombuffer(self.system.view(region, offset, byte_size), np.uint8)
            usage = self.system.usage
        elif region in self.cuda.regions:
            chunk = self.cuda.read(region, offset, byte_size)
            usage = self.cuda.usage
        else:
            raise not_found(f"Unable to find shared memory region: '{region}'")
        use = Use(usage, region)
        key = id(chunk)
        self._reads[key] = (weakref.ref(chunk), use)
        weakref.finalize(chunk, self._forget, key, use)
        return chunk

    def _forget(self, key: int, use: Use) -> None:
        entry = self._reads.get(key)
        if entry is not None and entry[1] is use:
            del self._reads[key]
        use.end()

    def hold(self, request: InferRequest) -> RegionHold | None:
        """The uses of the regions ``request`` reads (its inputs' arrays) and will write (its outputs),
        to release once its answer is written; None when it names no region."""
        if not (self.system.regions or self.cuda.regions):
            return None
        uses = []
        if self._reads:
            for tensor in request.inputs:
                use = self._use_of(tensor.data)
                if use is not None:
                    uses.append(use)
        for name in _output_regions(request.outputs or ()):
            if name in self.system.regions:
                uses.append(Use(self.system.usage, name))
            elif name in self.cuda.regions:
                uses.append(Use(self.cuda.usage, name))
        return RegionHold(uses) if uses else None

    def _use_of(self, data: object) -> Use | None:
        """The use of the array ``read`` gave that ``data`` views (None: a copy, or not from a region)."""
        while data is not None:
            entry = self._reads.get(id(data))
            if entry is not None and entry[0]() is data:
                return entry[1]
            data = getattr(data, "base", None)
        return None

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
