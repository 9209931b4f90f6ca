"""Statistics counting as Triton counts: requests, inferences (rows) and executions."""

from __future__ import annotations

import asyncio

import numpy as np
from google.protobuf import text_format

from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher
from tritonlite.statistics.model_stats import ModelStats


class SlowRunner:
    name = "r0"
    last_timings = (100, 1000, 10)

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def execute(self, requests):
        self.batches.append(len(requests))
        await asyncio.sleep(0.05)
        return [InferResponse("m", "1", r.id, []) for r in requests]

    async def stop(self):
        pass


def test_dynamic_batch_of_one_plus_eight_rows_counts_two_requests_nine_inferences_one_execution():
    async def go():
        stats = ModelStats()
        config = text_format.Parse("name: 'm' max_batch_size: 16 dynamic_batching { }", mc.ModelConfig())
        runner = SlowRunner()
        batcher = DynamicBatcher([runner], config, stats)
        first = InferRequest("m", "", "warm", [InferTensor("X", "FP32", [1, 2], np.zeros((1, 2), np.float32))])
        warm = asyncio.ensure_future(batcher.enqueue(first))
        await asyncio.sleep(0.01)  # the instance is busy: the next two queue and go out together
        small = InferRequest("m", "", "a", [InferTensor("X", "FP32", [1, 2], np.zeros((1, 2), np.float32))])
        big = InferRequest("m", "", "b", [InferTensor("X", "FP32", [8, 2], np.zeros((8, 2), np.float32))])
        await asyncio.gather(warm, batcher.enqueue(small), batcher.enqueue(big))
        await batcher.stop()
        return stats, runner.batches

    stats, batches = asyncio.run(go())
    assert batches == [1, 2]
    assert stats.execution_count == 2 and stats.inference_count == 1 + 9
    assert stats.compute_infer.count == 3 and stats.compute_infer.ns == 3 * 1000
    assert {size: b.compute_infer.count for size, b in stats.batches.items()} == {1: 1, 9: 1}
    assert stats.queue.count == 3


def test_json_shape_is_tritons():
    stats = ModelStats()
    stats.record_execution(4, 2, 10, 20, 30)
    stats.record_success(500)
    stats.record_failure(70, "BACKEND")
    data = stats.as_json("m", "1")
    assert list(data) == [
        "name", "version", "last_inference", "inference_count", "execution_count", "inference_stats",
        "response_stats", "batch_stats", "memory_usage",
    ]  # fmt: skip
    assert list(data["inference_stats"]) == [
        "success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss",
    ]  # fmt: skip
    assert data["inference_stats"]["compute_output"] == {"count": 2, "ns": 60}
    assert data["batch_stats"] == [
        {"batch_size": 4, "compute_input": {"count": 1, "ns": 10}, "compute_infer": {"count": 1, "ns": 20},
         "compute_output": {"count": 1, "ns": 30}}
    ]  # fmt: skip
    assert data["inference_stats"]["fail"] == {"count": 1, "ns": 70} and stats.failures["BACKEND"] == 1
    assert data["last_inference"] > 1_700_000_000_000


def test_a_batchs_queue_times_count_as_each_of_its_requests_would():
    from tritonlite.statistics.summary import LatencySummaries

    quantiles = ((0.5, 0.05), (0.9, 0.01))
    one_by_one, per_batch = ModelStats(), ModelStats()
    one_by_one.summaries, per_batch.summaries = LatencySummaries(quantiles), LatencySummaries(quantiles)
    waits = [1_500, 20_000, 3_000_000]
    for ns in waits:
        one_by_one.record_queue(ns)
    per_batch.record_queues(waits)
    batch_queue, single_queue = per_batch.queue, one_by_one.queue
    assert (batch_queue.count, batch_queue.ns) == (single_queue.count, single_queue.ns) == (3, 3_021_500)
    batch_summary, single_summary = per_batch.summaries.queue, one_by_one.summaries.queue
    assert (batch_summary.count, batch_summary.sum) == (single_summary.count, single_summary.sum) == (3, 3021)
    assert batch_summary.collect() == single_summary.collect()
