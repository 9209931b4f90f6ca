"""SystemSharedMemory without a server: mapping, bounds, deferred unmapping."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import tritonclient.utils.shared_memory as shm

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.sharedmem.registry import SharedMemory


@pytest.fixture()
def region():
    key = f"/tl_unit_{uuid.uuid4().hex[:8]}"
    handle = shm.create_shared_memory_region("r", key, 32)
    shm.set_shared_memory_region(handle, [np.arange(8, dtype=np.float32)])
    yield key, handle
    shm.destroy_shared_memory_region(handle)


def test_read_is_a_view_and_write_lands_in_the_region(region):
    key, handle = region
    memory = SharedMemory()
    memory.system.register("r", key, 0, 32)
    view = memory.read("r", 4, 8)
    assert np.frombuffer(view, np.float32).tolist() == [1.0, 2.0]
    memory.write("OUT", "r", 16, 16, np.array([9, 9], np.float32).tobytes())
    assert shm.get_contents_as_numpy(handle, np.float32, [8]).tolist()[4:6] == [9.0, 9.0]
    del view
    memory.close()
    assert memory.system.regions == {}


def test_bounds_and_sizes(region):
    key, _ = region
    memory = SharedMemory()
    memory.system.register("r", key, 8, 16)  # a window of the object
    with pytest.raises(TritonError, match="Invalid offset \\+ byte size for shared memory region: 'r'"):
        memory.read("r", 8, 16)
    with pytest.raises(TritonError) as info:
        memory.write("OUT", "r", 0, 4, b"12345678")
    assert info.value.kind == ErrorKind.INTERNAL and "(4 bytes) should be at least 8 bytes" in info.value.message
    with pytest.raises(TritonError, match="Unable to find shared memory region: 'zz'"):
        memory.read("zz", 0, 1)
    memory.close()


def test_a_region_an_input_still_views_is_in_use(region):
    key, _ = region
    memory = SharedMemory()
    memory.system.register("r", key, 0, 32)
    array = np.frombuffer(memory.read("r", 0, 32), np.float32)
    with pytest.raises(TritonError) as info:  # Triton 2.51's answer (500 / INTERNAL)
        memory.system.unregister("r")
    assert info.value.kind == ErrorKind.INTERNAL
    assert info.value.message == "Cannot unregister shared memory region 'r', it is currently in use."
    assert array[1] == 1.0
    del array
    memory.system.unregister("r")
    assert memory.system.regions == {} and memory.system._closing == []


def test_shutdown_unmapping_waits_for_arrays_still_viewing_the_region(region):
    key, _ = region
    memory = SharedMemory()
    memory.system.register("r", key, 0, 32)
    array = np.frombuffer(memory.read("r", 0, 32), np.float32)
    memory.close()  # in use or not, closed at shutdown; the mapping waits for the array
    assert memory.system.regions == {} and array[1] == 1.0
    del array
    memory.system.unregister()  # the next unregister closes it
    assert memory.system._closing == []
