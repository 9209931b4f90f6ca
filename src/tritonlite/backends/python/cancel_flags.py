"""Cancellation flags shared with a stub process: one byte per request of the running execute.

The channel to a stub takes turns strictly and the stub's main thread is inside ``execute`` while
a request may be cancelled, so a cancellation cannot travel as a message. Instead tritonlite and
the stub map one small anonymous file (``memfd``): tritonlite sets byte ``i`` when request ``i``
of the execute in flight is cancelled, and ``is_cancelled()`` in the stub reads it.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tritonlite.backends.python.ipc import anonymous_file
from tritonlite.core.types import InferRequest

# Requests of one execute that can be told of a cancellation (later ones never see it).
SLOTS = 4096


class CancelFlags:
    """tritonlite's side: the mapping, and the hooks that set a request's byte."""

    def __init__(self) -> None:
        self.fd = anonymous_file(SLOTS, "tritonlite-cancel-flags")
        try:
            self.map = mmap.mmap(self.fd, SLOTS, flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(self.fd)
            raise
        # a hook runs on the event loop, the execute on the instance thread: a late hook must not
        # mark the next execute's requests
        self._lock = threading.Lock()
        self._generation = 0  # which execute the hooks belong to

    def release_fd(self) -> None:
        """The stub has its own descriptor: the mapping is all this side needs."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.release_fd()
        self.map.close()

    @contextmanager
    def watching(self, requests: list[InferRequest]) -> Iterator[None]:
        """While the block runs (the execute in the stub), a cancelled request sets its byte."""
        count = min(len(requests), SLOTS)
        with self._lock:
            self._generation += 1
            self.map[:count] = bytes(count)
            for index in range(count):
                request = requests[index]
                if request.cancelled:
                    self.map[index] = 1
                request.on_cancel = self._setter(index, self._generation)
        try:
            yield
        finally:
            with self._lock:
                for request in requests[:count]:
                    request.on_cancel = None

    def _setter(self, index: int, generation: int) -> Callable[[], None]:
        def cancelled() -> None:
            with self._lock:
                if self._generation == generation:
                    self.map[index] = 1

        return cancelled


class StubCancelFlags:
    """The stub's side: reads the byte of a request of the execute it runs."""

    def __init__(self, fd: int) -> None:
        try:
            self.map = mmap.mmap(fd, SLOTS, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def __call__(self, index: int) -> bool:
        return index < SLOTS and self.map[index] != 0
