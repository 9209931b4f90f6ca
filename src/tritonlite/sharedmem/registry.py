"""Both kinds of regions behind one lookup, as the codecs need them."""

from __future__ import annotations

from tritonlite.core.errors import internal, not_found
from tritonlite.sharedmem.cuda import CudaSharedMemory
from tritonlite.sharedmem.system import SystemSharedMemory


class SharedMemory:
    """System and CUDA shared memory regions; names are looked up in that order."""

    def __init__(self) -> None:
        self.system = SystemSharedMemory()
        self.cuda = CudaSharedMemory()

    def read(self, region: str, offset: int, byte_size: int):
        """The bytes of an input: a view into system memory, or a host copy of CUDA memory."""
        if region in self.system.regions:
            return self.system.view(region, offset, byte_size)
        if region in self.cuda.regions:
            return self.cuda.read(region, offset, byte_size)
        raise not_found(f"Unable to find shared memory region: '{region}'")

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
