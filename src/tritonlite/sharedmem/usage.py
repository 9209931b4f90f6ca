"""Which shared memory regions requests are using, so that a region is not unregistered under them.

Triton 2.51 counts a region as in use from the decode of a request that names it until that
request's response has been written into it, and refuses to unregister it meanwhile (500 /
INTERNAL). System and CUDA regions share this bookkeeping; only the word in the unregister-all
message differs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tritonlite.core.errors import TritonError, internal


def in_use_error(name: str) -> TritonError:
    return internal(f"Cannot unregister shared memory region '{name}', it is currently in use.")


def unregister_all_error(kind: str, names: Iterable[str]) -> TritonError:
    """Triton's text when unregister-all left regions behind (names sorted, as in its std::map)."""
    listed = "".join(f"{name} ," for name in sorted(names))
    return internal(f"Failed to unregister the following {kind} shared memory regions: {listed}")


@dataclass
class RegionUsage:
    """Use counts by region name; thread-safe (a use may end on a model's thread)."""

    kind: str  # "system" or "cuda", Triton's word in the unregister-all message
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def release(self, name: str) -> None:
        with self._lock:
            left = self._counts.get(name, 0) - 1
            if left > 0:
                self._counts[name] = left
            else:
                self._counts.pop(name, None)

    def in_use(self, name: str) -> bool:
        return name in self._counts

    def unregister(self, name: str, registered: Iterable[str], remove: Callable[[str], None]) -> None:
        """Unregister ``name`` (every registered region when empty) with ``remove``; regions in use
        stay registered and the call fails with Triton's error once the others are removed."""
        if name:
            if self.in_use(name):
                raise in_use_error(name)
            remove(name)
            return
        refused = []
        for item in list(registered):
            if self.in_use(item):
                refused.append(item)
            else:
                remove(item)
        if refused:
            raise unregister_all_error(self.kind, refused)
