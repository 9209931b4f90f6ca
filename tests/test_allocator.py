"""tune_allocator: freed multi-megabyte buffers are reused instead of mapped afresh (counted in page faults)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tritonlite import allocator

PROGRAM = """
import resource, sys
from tritonlite.allocator import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tuned" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
bytearray(4 << 20)  # warm up whatever the first allocation sets up
before = faults()
for _ in range(20):  # a request's life: body, tensor, response alive together, then all freed
    buffers = [bytearray(4 << 20) for _ in range(3)]  # zero-filled: every page is touched
    del buffers
print(applied, faults() - before)
"""


def _faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True, env=env)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_allocator_reuses_big_buffers():
    applied, tuned = _faults("tuned")
    if applied != "True":
        pytest.skip("the C library is not glibc")
    _, plain = _faults("plain")
    # untuned: the freed 12 MiB is trimmed or unmapped and faulted in again (~3072 faults a round);
    # tuned: the heap keeps it for the next round
    assert plain > 20 * 1024
    assert tuned < 5 * 1024


def test_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TRITONLITE_MALLOC_TUNING", "0")
    assert allocator.tune_allocator() is False
