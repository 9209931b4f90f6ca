"""The rate limiter: resource counts and refusals, per-device and global resources, priorities, off mode.

Expected texts were captured from Triton 2.51 (``--rate-limit=execution_count``).
"""

from __future__ import annotations

import asyncio

import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.rate_limiter import (
    GLOBAL_RESOURCE_KEY,
    RateLimiter,
    instance_rate_limit,
    parse_rate_limit_mode,
    parse_resource_spec,
)

FORMAT = "--rate-limit-resource option format is '<resource_name>:<count>:<device>' or '<resource_name>:<count>'. Got "


def run(coro):
    return asyncio.run(coro)


async def spin(times: int = 3) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


# --- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("R:3", ("R", 3, -1)),
        ("R:3:1", ("R", 3, 1)),
        ("gpu mem:10:0", ("gpu mem", 10, 0)),
        ("R: 2", ("R", 2, -1)),  # std::stoi skips leading spaces
        ("R:1x", ("R", 1, -1)),  # ... and ignores what follows the digits
        (":1", ("", 1, -1)),  # Triton accepts an empty name
        ("R:-1", ("R", (1 << 64) - 1, -1)),  # a negative count wraps around (size_t)
    ],
)
def test_resource_spec_parsing(spec, expected):
    assert parse_resource_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("R", FORMAT + "R"),
        ("R:1:2:3", FORMAT + "R:1:2:3"),
        ("R:x", "Invalid option value. Got x"),
        ("R:", "Invalid option value. Got "),
        ("R:1:x", "Invalid option value. Got x"),
        ("R:99999999999", "Provided option value is out of bound. Got 99999999999"),
    ],
)
def test_malformed_resource_specs_have_tritons_texts(spec, message):
    with pytest.raises(TritonError) as info:
        RateLimiter("execution_count", [spec])
    assert info.value.kind == ErrorKind.INVALID_ARG
    assert info.value.message == message


def test_rate_limit_mode():
    assert parse_rate_limit_mode("EXECUTION_COUNT") == "execution_count"
    assert parse_rate_limit_mode("Off") == "off"
    with pytest.raises(TritonError, match="^invalid argument for --rate-limit$"):
        RateLimiter("sometimes")


def test_a_name_and_device_given_twice_keeps_the_smallest_count():
    # Triton 2.51: --rate-limit-resource=R:5 --rate-limit-resource=R:4 gives R 4 (either order)
    assert RateLimiter("execution_count", ["R:5", "R:4"]).explicit == {-1: {"R": 4}}
    assert RateLimiter("execution_count", ["R:4", "R:6", "R:2:0"]).explicit == {-1: {"R": 4}, 0: {"R": 2}}


def test_instance_group_rate_limiter_config():
    group = mc.ModelInstanceGroup()
    assert instance_rate_limit(group) == ([], 1)
    group.rate_limiter.priority = 3
    resource = group.rate_limiter.resources.add(name="R", count=2)
    setattr(resource, "global", True)
    group.rate_limiter.resources.add(name="Q", count=1)
    assert instance_rate_limit(group) == ([("R", 2, True), ("Q", 1, False)], 3)


# --- load-time counts and refusals ----------------------------------------------------------------


def test_default_counts_are_the_largest_any_instance_needs():
    limiter = RateLimiter("execution_count")
    limiter.register("a_0", 0, [("R1", 4, False), ("R2", 4, False)], 1)
    limiter.register("b_0", 0, [("R2", 5, False), ("R3", 10, False), ("R4", 5, False)], 1)
    limiter.register("c_0", 0, [("R1", 1, False), ("R3", 7, False), ("R4", 2, False)], 1)
    assert limiter.limits() == {0: {"R1": 4, "R2": 5, "R3": 10, "R4": 5}}
    limiter.unregister("b_0")
    assert limiter.limits() == {0: {"R1": 4, "R2": 4, "R3": 7, "R4": 2}}


def test_explicit_count_too_small_refuses_the_instance():
    limiter = RateLimiter("execution_count", ["R:3"])
    limiter.register("ma_0", 0, [("R", 2, False)], 1)
    with pytest.raises(TritonError) as info:
        limiter.register("mb_0", 0, [("R", 4, False)], 2)
    assert info.value.kind == ErrorKind.INVALID_ARG
    assert info.value.status_text() == (
        'Invalid argument: Resource count for "R" is limited to 3 which will prevent scheduling of one or more '
        "model instances, the minimum required count is 4"
    )
    assert limiter.limits() == {0: {"R": 3}}  # the refused instance is gone, the others stay
    limiter.register("mc_0", 0, [("R", 3, False)], 1)


def test_with_explicit_counts_an_unnamed_resource_has_none():
    limiter = RateLimiter("execution_count", ["R:3"])
    with pytest.raises(TritonError) as info:
        limiter.register("mq_0", 0, [("Q", 1, False)], 1)
    assert info.value.message == (
        'Resource count for "Q" is limited to 0 which will prevent scheduling of one or more model instances, '
        "the minimum required count is 1"
    )


def test_explicit_device_counts_apply_to_that_device_only():
    limiter = RateLimiter("execution_count", ["R:3:1"])
    with pytest.raises(TritonError, match='"R" is limited to 0 .* required count is 2$'):
        limiter.register("ma_0", 0, [("R", 2, False)], 1)  # a CPU instance is device 0
    limiter.register("ma_1", 1, [("R", 2, False)], 1)
    assert limiter.limits() == {1: {"R": 3}}
    # a count for every device and one for device 0: the larger applies there
    limiter = RateLimiter("execution_count", ["R:2", "R:5:0"])
    limiter.register("a", 0, [("R", 1, False)], 1)
    limiter.register("b", 1, [("R", 1, False)], 1)
    assert limiter.limits() == {0: {"R": 5}, 1: {"R": 2}}


def test_a_global_resource_takes_the_largest_count_given_on_any_device():
    limiter = RateLimiter("execution_count", ["G:1:0", "G:4:3"])
    limiter.register("a", 0, [("G", 4, True)], 1)
    assert limiter.limits() == {GLOBAL_RESOURCE_KEY: {"G": 4}}


def test_a_resource_both_global_and_per_device_is_refused():
    limiter = RateLimiter("execution_count")
    limiter.register("mg_0", 0, [("R", 2, True)], 1)
    with pytest.raises(TritonError) as info:
        limiter.register("ma_0", 0, [("R", 2, False)], 1)
    assert info.value.status_text() == (
        'Invalid argument: Resource "R" is present as both global and device-specific resource in the model '
        "configuration."
    )


def test_duplicate_instance_names_are_an_error():
    limiter = RateLimiter("execution_count")
    limiter.register("m_0", 0, [], 1)
    with pytest.raises(TritonError, match="already registered"):
        limiter.register("m_0", 0, [], 1)


# --- scheduling -----------------------------------------------------------------------------------


async def _workload(limiter: RateLimiter, jobs: list[list[str]], hold: int = 3) -> tuple[int, list[str]]:
    """Run each job (a candidate list) through acquire/release; returns the peak concurrency and the grants."""
    running = 0
    peak = 0
    grants: list[str] = []

    async def job(candidates: list[str]) -> None:
        nonlocal running, peak
        name = await limiter.acquire(candidates)
        grants.append(name)
        running += 1
        peak = max(peak, running)
        await spin(hold)
        running -= 1
        limiter.release(name)

    await asyncio.gather(*(job(c) for c in jobs))
    return peak, grants


def test_a_shared_resource_serializes_two_models():
    async def go():
        limiter = RateLimiter("execution_count", ["R:1"])
        limiter.register("ma_0", 0, [("R", 1, False)], 1)
        limiter.register("mb_0", 0, [("R", 1, False)], 1)
        return await _workload(limiter, [["ma_0"], ["mb_0"]] * 10)

    peak, grants = run(go())
    assert peak == 1
    assert sorted(grants) == ["ma_0"] * 10 + ["mb_0"] * 10


def test_without_shared_resources_instances_run_together():
    async def go():
        limiter = RateLimiter("execution_count")
        limiter.register("ma_0", 0, [("A", 1, False)], 1)
        limiter.register("mb_0", 0, [("B", 1, False)], 1)
        limiter.register("mc_0", 0, [], 1)
        return await _workload(limiter, [["ma_0"], ["mb_0"], ["mc_0"]] * 5)

    peak, _ = run(go())
    assert peak == 3


def test_resource_counts_allow_that_many_at_once():
    async def go():
        limiter = RateLimiter("execution_count", ["R:2"])
        for model in "abcd":
            limiter.register(f"{model}_0", 0, [("R", 1, False)], 1)
        return await _workload(limiter, [[f"{m}_0"] for m in "abcd"] * 5)

    peak, _ = run(go())
    assert peak == 2


def test_per_device_resources_do_not_limit_other_devices_but_global_ones_do():
    async def go(is_global: bool):
        limiter = RateLimiter("execution_count")
        limiter.register("a_0", 0, [("R", 1, is_global)], 1)
        limiter.register("b_1", 1, [("R", 1, is_global)], 1)
        return await _workload(limiter, [["a_0"], ["b_1"]] * 5)

    assert run(go(False))[0] == 2
    assert run(go(True))[0] == 1


def test_an_instance_is_never_granted_twice_and_the_model_queue_is_fifo():
    async def go():
        limiter = RateLimiter("execution_count")
        limiter.register("m_0", 0, [], 1)
        limiter.register("m_1", 0, [], 1)
        order = []

        async def request(i: int):
            name = await limiter.acquire(["m_0", "m_1"])
            order.append((i, name))
            await spin(2)
            limiter.release(name)

        await asyncio.gather(*(request(i) for i in range(6)))
        return order

    order = run(go())
    assert [i for i, _ in order] == list(range(6))
    assert {name for _, name in order[:2]} == {"m_0", "m_1"}


def test_priority_weighting_over_300_grants():
    """Priority 2 gets about half the executions of priority 1 (Triton: exec_count * priority ordering)."""

    async def go():
        limiter = RateLimiter("execution_count")
        limiter.register("fast_0", 0, [("R", 1, False)], 1)
        limiter.register("slow_0", 0, [("R", 1, False)], 2)
        limiter.register("zero_0", 0, [("R", 1, False)], 0)  # priority 0 counts as 1
        counts = {"fast_0": 0, "slow_0": 0, "zero_0": 0}
        stop = False

        async def client(name: str):
            while not stop:
                granted = await limiter.acquire([name])
                counts[granted] += 1
                await asyncio.sleep(0)
                limiter.release(granted)

        tasks = [asyncio.create_task(client(name)) for name in counts for _ in range(3)]
        while sum(counts.values()) < 300:
            await asyncio.sleep(0)
        stop = True
        await asyncio.gather(*tasks)
        return counts

    counts = run(go())
    total = sum(counts.values())
    assert total >= 300
    # expected shares 2/5, 1/5, 2/5
    assert 0.30 < counts["fast_0"] / total < 0.50
    assert 0.12 < counts["slow_0"] / total < 0.28
    assert 0.30 < counts["zero_0"] / total < 0.50
    assert 1.5 < counts["fast_0"] / counts["slow_0"] < 2.6


def test_the_first_in_line_waits_for_its_resources_and_others_wait_behind_it():
    async def go():
        limiter = RateLimiter("execution_count", ["R:2"])
        limiter.register("big_0", 0, [("R", 2, False)], 1)
        limiter.register("small_0", 0, [("R", 1, False)], 1)
        limiter.register("other_0", 0, [("R", 1, False)], 1)
        # small_0 has run before, so big_0 (never run) is first in line
        limiter.release(await limiter.acquire(["small_0"]))
        running = await limiter.acquire(["other_0"])
        big = asyncio.create_task(limiter.acquire(["big_0"]))
        small = asyncio.create_task(limiter.acquire(["small_0"]))
        await spin()
        blocked = (big.done(), small.done())
        limiter.release(running)
        await spin()
        after = (big.done(), small.done())
        limiter.release(await big)
        await small
        return blocked, after

    blocked, after = run(go())
    assert blocked == (False, False)  # 1 of 2 copies free: small_0 would fit but waits behind big_0
    assert after == (True, False)


def test_cancelled_waiters_take_nothing():
    async def go():
        limiter = RateLimiter("execution_count")
        limiter.register("a_0", 0, [("R", 1, False)], 1)
        limiter.register("b_0", 0, [("R", 1, False)], 1)
        held = await limiter.acquire(["a_0"])
        waiting = asyncio.create_task(limiter.acquire(["b_0"]))
        await spin()
        waiting.cancel()
        await spin()
        limiter.release(held)
        again = await asyncio.wait_for(limiter.acquire(["b_0"]), 1)
        limiter.release(again)
        return waiting.cancelled(), limiter.in_use()

    cancelled, in_use = run(go())
    assert cancelled
    assert in_use == {}


def test_unregister_fails_waiters_and_a_running_instance_still_gives_back_its_resources():
    async def go():
        limiter = RateLimiter("execution_count")
        limiter.register("a_0", 0, [("R", 1, False)], 1)
        limiter.register("b_0", 0, [("R", 1, False)], 1)
        held = await limiter.acquire(["a_0"])
        waiting = asyncio.create_task(limiter.acquire(["b_0"]))
        await spin()
        limiter.unregister("b_0")
        with pytest.raises(TritonError) as info:
            await waiting
        limiter.unregister("a_0")
        in_use_before = limiter.in_use()
        limiter.release(held)
        return info.value.kind, in_use_before, limiter.in_use()

    kind, before, after = run(go())
    assert kind == ErrorKind.UNAVAILABLE
    assert before == {0: {"R": 1}}
    assert after == {}


def test_unknown_candidates_are_an_error():
    async def go():
        limiter = RateLimiter("execution_count")
        await limiter.acquire(["nope"])

    with pytest.raises(TritonError, match="not registered"):
        run(go())


def test_off_mode_is_a_no_op():
    async def go():
        limiter = RateLimiter("off", ["R:1"])
        assert not limiter.enabled
        limiter.register("a_0", 0, [("R", 100, False)], 5)  # nothing is checked
        limiter.register("a_0", 0, [("R", 100, True)], 5)
        first = await limiter.acquire(["x", "y"])
        second = await limiter.acquire(["x", "y"])  # not tracked: the same instance again
        limiter.release("x")
        limiter.unregister("nothing")
        return first, second, limiter.limits()

    assert run(go()) == ("x", "x", {})
