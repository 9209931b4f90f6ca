"""Keep big tensor buffers in the heap instead of mapping fresh pages for every request.

glibc serves allocations above its mmap threshold with a new mapping and unmaps them on free, so
every multi-megabyte body, tensor or response pays a page fault per 4 KiB page when it is first
written (about 1024 faults, ~1 ms, per 4 MB buffer). Raising the mmap threshold to its maximum
(32 MiB on 64-bit) and the trim threshold above it lets freed buffers be reused by the next
request. Idle memory is unchanged; after large requests the heap keeps up to
``TRIM_THRESHOLD_BYTES`` of free space for reuse. ``TRITONLITE_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def tune_allocator() -> bool:
    """Apply the thresholds when the C library is glibc; True when they were applied."""
    if os.environ.get("TRITONLITE_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc thresholds %s", "raised" if applied else "left as they were")
    return applied
