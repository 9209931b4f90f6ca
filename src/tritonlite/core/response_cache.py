"""The response cache (``--cache-config=local,size=N`` and ``response_cache { enable: true }``).

Keys hash the model, version, every input (name, datatype, shape, bytes) and what the request
asks of the outputs; values are the finished responses, copied. Least recently used entries
go first when the bytes they hold exceed the size. Hits skip the scheduler entirely.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time

import numpy as np

from tritonlite.core.datatypes import serialize_bytes
from tritonlite.core.types import InferRequest, InferResponse, InferTensor


def request_key(model: str, version: str, request: InferRequest) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{model}\0{version}\0".encode())
    for tensor in sorted(request.inputs, key=lambda t: t.name):
        digest.update(f"{tensor.name}\0{tensor.datatype}\0{tensor.shape}\0".encode())
        data = tensor.data
        if tensor.datatype == "BYTES":
            digest.update(serialize_bytes(np.asarray(data)))
        else:
            digest.update(np.ascontiguousarray(data).view(np.uint8).reshape(-1).data)
    if request.outputs:
        for output in sorted(request.outputs, key=lambda o: o.name):
            digest.update(f"out\0{output.name}\0{output.class_count}\0".encode())
    return digest.digest()


def _size(response: InferResponse) -> int:
    total = 64
    for tensor in response.outputs:
        data = tensor.data
        if tensor.datatype == "BYTES":
            total += sum(len(v) if isinstance(v, (bytes, bytearray)) else len(str(v)) for v in np.asarray(data).flat)
        else:
            total += np.asarray(data).nbytes
    return total


class ResponseCache:
    """An LRU of responses bounded by bytes, with the counters Triton's cache metrics show."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = max(int(capacity_bytes), 0)
        self.used = 0
        self._entries: collections.OrderedDict[bytes, tuple[InferResponse, int]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.lookups = self.hits = self.misses = self.evictions = 0
        self.lookup_ns = self.insertion_ns = 0

    @property
    def entries(self) -> int:
        return len(self._entries)

    def lookup(self, key: bytes, request: InferRequest) -> InferResponse | None:
        start = time.monotonic_ns()
        with self._lock:
            self.lookups += 1
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            self.lookup_ns += time.monotonic_ns() - start
        if found is None:
            return None
        stored = found[0]
        outputs = [InferTensor(t.name, t.datatype, list(t.shape), t.data) for t in stored.outputs]
        return InferResponse(stored.model_name, stored.model_version, request.id, outputs, stored.parameters)

    def insert(self, key: bytes, response: InferResponse) -> None:
        start = time.monotonic_ns()
        copied = InferResponse(
            response.model_name,
            response.model_version,
            "",
            [InferTensor(t.name, t.datatype, list(t.shape), np.array(t.data, copy=True)) for t in response.outputs],
            response.parameters,
        )
        size = _size(copied)
        with self._lock:
            if size <= self.capacity and key not in self._entries:
                while self.used + size > self.capacity and self._entries:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self.used -= evicted
                    self.evictions += 1
                self._entries[key] = (copied, size)
                self.used += size
            self.insertion_ns += time.monotonic_ns() - start

    def utilization(self) -> float:
        return self.used / self.capacity if self.capacity else 0.0


def parse_cache_config(values: list[str]) -> int | None:
    """``--cache-config=local,size=N`` -> N bytes (None when no cache is configured)."""
    size = None
    for value in values:
        name, sep, setting = value.partition(",")
        key, eq, item = setting.partition("=")
        if not sep or not eq:
            raise ValueError(f"--cache-config option format is '<cache name>,<setting>=<value>'. Got {value}")
        if name != "local":
            raise ValueError(f"cache '{name}' is not supported by tritonlite; use the 'local' cache")
        if key == "size":
            size = int(item)
        else:
            raise ValueError(f"unknown setting '{key}' for the local cache")
    return size
