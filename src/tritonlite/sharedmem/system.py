"""System (POSIX) shared memory regions: mapped once at registration, viewed without copies.

A client creates a region with ``shm_open`` (tritonclient.utils.shared_memory does), registers
(name, key, offset, byte_size), and then names it in input and output parameters. Inputs are
numpy views straight into the mapping; outputs are written into it. Regions are unmapped on
unregister and at shutdown (a mapping still viewed by a live array is closed once it is freed);
a region a request is using cannot be unregistered (``usage.py``).
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass

from tritonlite.core.errors import ErrorKind, TritonError, internal, invalid_arg, not_found
from tritonlite.sharedmem.usage import RegionUsage

SHM_ROOT = "/dev/shm"


@dataclass
class SystemRegion:
    name: str
    key: str
    offset: int
    byte_size: int
    mapping: mmap.mmap

    def status(self) -> dict:
        return {"name": self.name, "key": self.key, "offset": self.offset, "byte_size": self.byte_size}


def region_view(region_name: str, mapping, region_offset: int, region_size: int, offset: int, size: int):
    """The bytes [offset, offset + size) of a region, with Triton's error when they do not fit."""
    if offset < 0 or size < 0 or offset + size > region_size:
        raise invalid_arg(f"Invalid offset + byte size for shared memory region: '{region_name}'")
    start = region_offset + offset
    return memoryview(mapping)[start : start + size]


class SystemSharedMemory:
    """The registered system shared memory regions of the server."""

    def __init__(self) -> None:
        self.regions: dict[str, SystemRegion] = {}
        self._lock = threading.Lock()
        self._closing: list[mmap.mmap] = []
        self.usage = RegionUsage("system")

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        with self._lock:
            if name in self.regions:
                raise TritonError(ErrorKind.ALREADY_EXISTS, f"shared memory region '{name}' already in manager")
            # shm_open reads the key as a C string: it ends at a NUL, as in Triton
            os_key = key.split("\0", 1)[0]
            path = os.path.join(SHM_ROOT, os_key.lstrip("/"))
            if "/" in os_key.lstrip("/") or not os_key.strip("/"):
                raise internal(f"Unable to open shared memory region: '{key}'")
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                raise internal(f"Unable to open shared memory region: '{key}'") from None
            try:
                size = os.fstat(fd).st_size
                if offset < 0 or byte_size <= 0 or offset + byte_size > size:
                    raise invalid_arg(f"failed to register shared memory region '{name}': invalid args")
                mapping = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self.regions[name] = SystemRegion(name, key, offset, byte_size, mapping)

    def unregister(self, name: str = "") -> None:
        """Unregister one region, or every region when ``name`` is empty (unknown names are fine);
        regions in use are refused with Triton's error."""
        with self._lock:
            try:
                self.usage.unregister(name, self.regions, self._remove)
            finally:
                self._close_pending()

    def _remove(self, name: str) -> None:
        region = self.regions.pop(name, None)
        if region is not None:
            self._closing.append(region.mapping)

    def _close_pending(self) -> None:
        still_open = []
        for candidate in self._closing:
            try:
                candidate.close()
            except BufferError:  # an array still views it; try again at the next unregister
                still_open.append(candidate)
        self._closing = still_open

    def status(self, name: str = "") -> list[dict]:
        if name:
            region = self.regions.get(name)
            if region is None:
                raise not_found(f"Unable to find system shared memory region: '{name}'")
            return [region.status()]
        return [region.status() for region in self.regions.values()]

    def view(self, name: str, offset: int, byte_size: int) -> memoryview:
        region = self.regions.get(name)
        if region is None:
            raise not_found(f"Unable to find shared memory region: '{name}'")
        return region_view(name, region.mapping, region.offset, region.byte_size, offset, byte_size)

    def close(self) -> None:
        """Unmap every region at shutdown, in use or not."""
        with self._lock:
            for name in list(self.regions):
                self._remove(name)
            self._close_pending()
