"""The in-use bookkeeping shared by system and CUDA regions, without a server (and without a GPU)."""

from __future__ import annotations

import asyncio

import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, RequestedOutput
from tritonlite.sharedmem.cuda import CudaRegion
from tritonlite.sharedmem.registry import SharedMemory


def _cuda_region(memory: SharedMemory, name: str) -> None:
    # a registered region as registration leaves it (no handle opened: nothing to close without CUDA)
    memory.cuda.regions[name] = CudaRegion(name, 0, 64, 0, None)


def _request(*regions: str) -> InferRequest:
    request = InferRequest("m", "")
    request.outputs = [
        RequestedOutput(f"OUT{i}", {"binary_data": False, "shm": (r, 0, 16)}) for i, r in enumerate(regions)
    ]
    return request


def test_cuda_regions_in_use_are_refused_as_triton_refuses_them():
    memory = SharedMemory()
    for name in ("b_busy", "a_busy", "idle"):
        _cuda_region(memory, name)
    hold = memory.hold(_request("b_busy", "a_busy", "a_busy"))
    assert hold is not None
    with pytest.raises(TritonError) as info:
        memory.cuda.unregister("a_busy")
    assert (info.value.kind, info.value.message) == (
        ErrorKind.INTERNAL, "Cannot unregister shared memory region 'a_busy', it is currently in use.")  # fmt: skip
    with pytest.raises(TritonError) as info:
        memory.cuda.unregister()
    assert info.value.message == "Failed to unregister the following cuda shared memory regions: a_busy ,b_busy ,"
    assert sorted(memory.cuda.regions) == ["a_busy", "b_busy"]  # the idle one went
    hold.release()
    hold.release()  # once only
    memory.cuda.unregister()
    assert memory.cuda.regions == {}


def test_requests_naming_no_region_hold_nothing():
    memory = SharedMemory()
    assert memory.hold(_request("x")) is None  # nothing registered
    _cuda_region(memory, "r")
    assert memory.hold(InferRequest("m", "")) is None
    assert memory.hold(_request("unknown")) is None


def test_output_uses_end_one_loop_turn_after_the_answer():
    """The frontends write outputs in callbacks of the turn the request's future settles in; the use ends after."""
    memory = SharedMemory()
    _cuda_region(memory, "r")
    seen = []

    async def run():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        hold = memory.hold(_request("r"))
        future.add_done_callback(hold.release_after_answer)
        future.add_done_callback(lambda _: seen.append(memory.cuda.usage.in_use("r")))  # a writer's turn
        future.set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append(memory.cuda.usage.in_use("r"))

    asyncio.run(run())
    assert seen == [True, False]
