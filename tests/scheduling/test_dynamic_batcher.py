"""The dynamic batcher with fake instances: which requests run together, when, in what order."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from google.protobuf import text_format

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher


class FakeRunner:
    """Records each batch (the batch sizes of its requests) and answers after `sleep` seconds."""

    def __init__(self, name: str = "r0", sleep: float = 0.0, log: list | None = None) -> None:
        self.name = name
        self.sleep = sleep
        self.batches: list[list[str]] = [] if log is None else log
        self.last_timings = (1000, 2000, 3000)

    async def execute(self, requests: list[InferRequest]):
        self.batches.append([r.id for r in requests])
        delay = self.sleep(requests) if callable(self.sleep) else self.sleep
        await asyncio.sleep(delay)
        return [InferResponse(r.model_name, "1", r.id, r.inputs) for r in requests]

    async def stop(self) -> None:
        pass


def config(text: str, max_batch_size: int = 8) -> mc.ModelConfig:
    cfg = text_format.Parse(text, mc.ModelConfig())
    cfg.name = "m"
    cfg.max_batch_size = max_batch_size
    return cfg


def request(rid: str, batch: int = 1, width: int = 4, priority: int = 0, timeout_us: int = 0) -> InferRequest:
    req = InferRequest("m", "", rid, [InferTensor("X", "FP32", [batch, width], np.zeros((batch, width), np.float32))])
    req.priority = priority
    req.timeout_us = timeout_us
    return req


async def infer(batcher: DynamicBatcher, req: InferRequest):
    """The request's result; a refusal (full queue) raised by ``enqueue`` comes out here too."""
    return await batcher.enqueue(req)


async def run_all(batcher: DynamicBatcher, requests: list[InferRequest], spacing: float = 0.0) -> list:
    tasks = []
    for req in requests:
        tasks.append(asyncio.ensure_future(infer(batcher, req)))
        if spacing:
            await asyncio.sleep(spacing)
        else:
            await asyncio.sleep(0)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.stop()
    return results


def test_concurrent_requests_batch_up_to_max_batch_size():
    async def go():
        busy = FakeRunner(sleep=0.05)
        batcher = DynamicBatcher([busy], config("dynamic_batching { }", max_batch_size=4))
        results = await run_all(batcher, [request(str(i)) for i in range(9)])
        return busy.batches, results

    batches, results = asyncio.run(go())
    assert [len(b) for b in batches] == [1, 4, 4]  # the first runs alone, the rest queue while it runs
    assert all(isinstance(r, InferResponse) for r in results)
    assert [r.id for r in results] == [str(i) for i in range(9)]  # every client gets its own answer


def test_batch_dimension_units_not_request_count():
    async def go():
        runner = FakeRunner(sleep=0.05)
        batcher = DynamicBatcher([runner], config("dynamic_batching { }", max_batch_size=8))
        await run_all(batcher, [request("a", 1), request("b", 5), request("c", 3), request("d", 3), request("e", 2)])
        return runner.batches

    assert asyncio.run(go()) == [["a"], ["b", "c"], ["d", "e"]]


def test_preferred_size_goes_out_at_once_and_delay_is_respected():
    async def go():
        runner = FakeRunner()
        cfg = config("dynamic_batching { preferred_batch_size: [4] max_queue_delay_microseconds: 300000 }")
        batcher = DynamicBatcher([runner], cfg)
        start = time.monotonic()
        await run_all(batcher, [request(str(i)) for i in range(4)])
        full = time.monotonic() - start
        batcher = DynamicBatcher([runner], cfg)
        start = time.monotonic()
        await run_all(batcher, [request("lone")])
        lone = time.monotonic() - start
        return runner.batches, full, lone

    batches, full, lone = asyncio.run(go())
    assert batches == [["0", "1", "2", "3"], ["lone"]]
    assert full < 0.2  # preferred size reached: no waiting for the delay
    assert 0.28 <= lone < 1.0  # a lone request waits the delay, not more


def test_delay_expiry_cuts_to_the_largest_preferred_size():
    async def go():
        runner = FakeRunner()
        cfg = config("dynamic_batching { preferred_batch_size: [2, 8] max_queue_delay_microseconds: 100000 }")
        batcher = DynamicBatcher([runner], cfg)
        await run_all(batcher, [request(str(i)) for i in range(5)])
        return runner.batches

    # five requests: at the delay the largest preferred size that fits (2) goes; then 2; then the last one
    assert asyncio.run(go()) == [["0", "1"], ["2", "3"], ["4"]]


def test_different_shapes_are_never_in_one_batch():
    async def go():
        runner = FakeRunner(sleep=0.05)
        batcher = DynamicBatcher([runner], config("dynamic_batching { }"))
        reqs = [request("w4a", width=4), request("w4b", width=4), request("w5", width=5), request("w4c", width=4)]
        results = await run_all(batcher, [request("first")] + reqs)
        return runner.batches, results

    batches, results = asyncio.run(go())
    for batch in batches:
        widths = {"w5" if rid == "w5" else "w4" for rid in batch}
        assert len(widths) == 1, batches
    for result in results[1:]:
        assert result.outputs[0].shape[1] == (5 if result.id == "w5" else 4)


def test_higher_priority_is_served_first():
    async def go():
        runner = FakeRunner(sleep=0.05)
        cfg = config("dynamic_batching { priority_levels: 2 default_priority_level: 2 }", max_batch_size=1)
        batcher = DynamicBatcher([runner], cfg)
        reqs = [request("busy"), request("low1", priority=2), request("low2"), request("high", priority=1)]
        await run_all(batcher, reqs)
        return runner.batches

    assert asyncio.run(go()) == [["busy"], ["high"], ["low1"], ["low2"]]


def test_out_of_range_priority_means_the_default_level():
    # Triton 2.51 accepts priority 5 (or 0) with 2 levels and queues it at the default level
    async def go():
        runner = FakeRunner(sleep=0.05)
        cfg = config("dynamic_batching { priority_levels: 2 default_priority_level: 2 }", max_batch_size=1)
        batcher = DynamicBatcher([runner], cfg)
        reqs = [request("busy"), request("p5", priority=5), request("p1", priority=1), request("p0", priority=0)]
        results = await run_all(batcher, reqs)
        return runner.batches, results

    batches, results = asyncio.run(go())
    assert all(isinstance(r, InferResponse) for r in results)
    assert batches == [["busy"], ["p1"], ["p5"], ["p0"]]


def test_full_queue_rejects_at_once_and_others_still_succeed():
    async def go():
        runner = FakeRunner(sleep=0.1)
        cfg = config("dynamic_batching { default_queue_policy { max_queue_size: 2 } }", max_batch_size=1)
        batcher = DynamicBatcher([runner], cfg)
        return await run_all(batcher, [request(str(i)) for i in range(5)])

    results = asyncio.run(go())
    errors = [r for r in results if isinstance(r, TritonError)]
    assert len(errors) == 2 and all(e.kind == ErrorKind.UNAVAILABLE for e in errors)
    assert all("queue size" in e.message for e in errors)
    assert sum(isinstance(r, InferResponse) for r in results) == 3


def test_queue_timeout_rejects_or_delays():
    async def go(action: str):
        runner = FakeRunner(sleep=0.3)
        text = (
            "dynamic_batching {{ default_queue_policy {{ timeout_action: {} default_timeout_microseconds: 200000 "
            "allow_timeout_override: true }} }}"
        )
        batcher = DynamicBatcher([runner], config(text.format(action), max_batch_size=1))
        tasks = [asyncio.ensure_future(batcher.enqueue(request("busy")))]
        await asyncio.sleep(0.01)
        tasks.append(asyncio.ensure_future(batcher.enqueue(request("short", timeout_us=20_000))))
        tasks.append(asyncio.ensure_future(batcher.enqueue(request("long", timeout_us=10_000_000))))
        await asyncio.sleep(0.24)
        tasks.append(asyncio.ensure_future(batcher.enqueue(request("fresh"))))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.stop()
        return runner.batches, dict(zip(["busy", "short", "long", "fresh"], results, strict=True))

    batches, results = asyncio.run(go("REJECT"))
    # "long" asked for 10 s but a request can only shorten the 200 ms default: both expire
    for name in ("short", "long"):
        assert isinstance(results[name], TritonError) and results[name].kind == ErrorKind.UNAVAILABLE
        assert results[name].message == "Request timeout expired"
    assert batches == [["busy"], ["fresh"]]
    batches, results = asyncio.run(go("DELAY"))
    assert all(isinstance(r, InferResponse) for r in results.values())
    assert batches == [["busy"], ["fresh"], ["short"], ["long"]]  # expired ones go after the others


def test_preferred_size_prefix_goes_at_once_and_the_rest_waits():
    async def go():
        runner = FakeRunner()
        cfg = config("dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 150000 }")
        batcher = DynamicBatcher([runner], cfg)
        start = time.monotonic()
        done: dict[str, float] = {}

        async def one(rid):
            await batcher.enqueue(request(rid))
            done[rid] = time.monotonic() - start

        await asyncio.gather(*(one(str(i)) for i in range(5)))
        await batcher.stop()
        return runner.batches, done

    batches, done = asyncio.run(go())
    assert batches == [["0", "1", "2", "3"], ["4"]]
    assert done["0"] < 0.1 and done["4"] >= 0.14


def test_requests_queued_behind_a_busy_instance_go_together_after_the_delay():
    async def go():
        runner = FakeRunner(sleep=0.2)
        cfg = config("dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 100000 }")
        batcher = DynamicBatcher([runner], cfg)
        first = asyncio.ensure_future(batcher.enqueue(request("blocker", batch=4)))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batcher.enqueue(request(str(i)))) for i in range(5)]
        await asyncio.gather(first, *rest)
        await batcher.stop()
        return runner.batches

    # Triton 2.51: five requests waiting past the delay go as one batch of 5, not 4 + 1
    assert asyncio.run(go())[1] == ["0", "1", "2", "3", "4"]


def test_preserve_ordering_with_two_instances():
    async def go(preserve: bool):
        log: list = []
        slow_first = {"a": 0.2, "b": 0.01}
        runners = [FakeRunner(f"r{i}", sleep=lambda reqs: slow_first.get(reqs[0].id, 0), log=log) for i in range(2)]
        text = "dynamic_batching { preserve_ordering: %s }" % ("true" if preserve else "false")
        batcher = DynamicBatcher(runners, config(text, max_batch_size=1))
        order: list[str] = []

        async def one(req):
            result = await batcher.enqueue(req)
            order.append(result.id)

        await asyncio.gather(one(request("a")), one(request("b")))
        await batcher.stop()
        return order

    assert asyncio.run(go(False)) == ["b", "a"]
    assert asyncio.run(go(True)) == ["a", "b"]


def test_two_instances_run_two_batches_at_once():
    async def go():
        log: list = []
        runners = [FakeRunner(f"r{i}", sleep=0.2, log=log) for i in range(2)]
        batcher = DynamicBatcher(runners, config("dynamic_batching { }", max_batch_size=1))
        start = time.monotonic()
        await run_all(batcher, [request(str(i)) for i in range(4)])
        return time.monotonic() - start

    assert asyncio.run(go()) < 0.7  # 4 x 0.2 s on 2 instances: ~0.4 s, not 0.8 s


def test_cancelled_request_frees_its_slot():
    async def go():
        runner = FakeRunner(sleep=0.1)
        batcher = DynamicBatcher([runner], config("dynamic_batching { }", max_batch_size=1))
        first = asyncio.ensure_future(batcher.enqueue(request("first")))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(batcher.enqueue(request("gone")))
        kept = asyncio.ensure_future(batcher.enqueue(request("kept")))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.gather(first, kept)
        with pytest.raises(asyncio.CancelledError):
            await gone
        await batcher.stop()
        return runner.batches

    assert asyncio.run(go()) == [["first"], ["kept"]]


def test_arrivals_that_cannot_complete_the_batch_leave_the_batcher_asleep():
    async def go():
        runner = FakeRunner()
        cfg = config("dynamic_batching { preferred_batch_size: [16] max_queue_delay_microseconds: 2000000 }", 16)
        batcher = DynamicBatcher([runner], cfg)
        forms = []
        original = batcher._form

        def counted(now):
            forms.append(now)
            return original(now)

        batcher._form = counted
        tasks = []
        for i in range(15):
            tasks.append(asyncio.ensure_future(batcher.enqueue(request(str(i)))))
            await asyncio.sleep(0.001)
        looked_before_full = len(forms)
        start = time.monotonic()
        tasks.append(asyncio.ensure_future(batcher.enqueue(request("15"))))
        await asyncio.gather(*tasks)
        waited = time.monotonic() - start
        await batcher.stop()
        return looked_before_full, waited, runner.batches

    looked, waited, batches = asyncio.run(go())
    assert looked <= 2  # the first arrival armed the delay; the next 14 did not wake the batcher
    assert waited < 1.0  # the 16th completed the preferred size: the batch went without the 2 s delay
    assert batches == [[str(i) for i in range(16)]]


def test_a_request_that_does_not_fit_closes_the_waiting_batch_at_once():
    async def go():
        runner = FakeRunner()
        batcher = DynamicBatcher([runner], config("dynamic_batching { max_queue_delay_microseconds: 1000000 }"))
        start = time.monotonic()
        first = [asyncio.ensure_future(batcher.enqueue(request(name))) for name in ("a", "b")]
        await asyncio.sleep(0.01)
        odd = asyncio.ensure_future(batcher.enqueue(request("wide", width=5)))
        await asyncio.gather(*first)
        closed_after = time.monotonic() - start
        await odd
        await batcher.stop()
        return closed_after, runner.batches

    closed_after, batches = asyncio.run(go())
    assert closed_after < 0.5  # not the 1 s delay: the different shape closed the batch
    assert batches == [["a", "b"], ["wide"]]


def test_an_earlier_queue_timeout_wakes_the_waiting_batcher():
    async def go():
        runner = FakeRunner()
        text = (
            "dynamic_batching { max_queue_delay_microseconds: 1000000 preferred_batch_size: [8] "
            "default_queue_policy { allow_timeout_override: true } }"
        )
        batcher = DynamicBatcher([runner], config(text))
        waiting = asyncio.ensure_future(batcher.enqueue(request("waits")))
        await asyncio.sleep(0.01)
        start = time.monotonic()
        try:
            await batcher.enqueue(request("hurried", timeout_us=50_000))
        except TritonError as exc:
            outcome = exc.message
        rejected_after = time.monotonic() - start
        await waiting
        await batcher.stop()
        return outcome, rejected_after

    outcome, rejected_after = asyncio.run(go())
    assert outcome == "Request timeout expired"
    assert rejected_after < 0.5  # at its own 50 ms deadline, not at the batch's 1 s delay


def test_batch_signature_is_each_inputs_name_datatype_and_non_batch_shape():
    from tritonlite.scheduling.dynamic_batcher import _signature

    def request(*tensors):
        return InferRequest("m", "", "", [InferTensor(n, d, s, np.zeros(s, np.float32)) for n, d, s in tensors])

    one = _signature(request(("X", "FP32", [3, 4])))
    assert one == (("X", "FP32", (4,)),)
    assert one == _signature(request(("X", "FP32", [1, 4])))  # the batch dimension does not count
    assert one != _signature(request(("X", "FP32", [1, 5])))
    assert one != _signature(request(("X", "FP32", [1, 4]), ("Y", "FP32", [1, 2])))
    # several inputs: the order they came in does not matter
    assert _signature(request(("B", "FP32", [1, 2]), ("A", "FP32", [1, 4]))) == _signature(
        request(("A", "FP32", [2, 4]), ("B", "FP32", [2, 2]))
    )
