"""Per-version inference statistics with Triton's counting rules.

- a request that fails validation is not counted (as in Triton);
- success/fail/queue/compute_* count requests; their ``ns`` add up each request's time;
- a batch of requests is one execution; ``inference_count`` adds its batch size (rows);
- ``batch_stats`` has one entry per batch size, counting executions.

Counters are plain integers updated on the event loop; the statistics endpoints and the
metrics collector read them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def as_json(self) -> dict:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class ModelStats:
    """Counters of one model version."""

    __slots__ = (
        "success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
        "cache_hit", "cache_miss", "inference_count", "execution_count", "last_inference_ms",
        "batches", "failures", "pending", "summaries", "first_response", "instance_restarts",
    )  # fmt: skip

    def __init__(self) -> None:
        self.success = Duration()
        self.fail = Duration()
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.cache_hit = Duration()
        self.cache_miss = Duration()
        self.inference_count = 0
        self.execution_count = 0
        self.last_inference_ms = 0
        self.batches: dict[int, BatchStats] = {}
        self.failures = dict.fromkeys(FAILURE_REASONS, 0)
        self.pending = 0
        self.instance_restarts = 0  # instances started again after they hung or died
        # statistics.summary.LatencySummaries with --metrics-config summary_latencies=true; they observe
        # what the counters add (in whole microseconds), so each summary's _sum is its counter's value
        self.summaries = None
        # statistics.histogram.Histogram of a decoupled model with --metrics-config histogram_latencies=true
        self.first_response = None

    def record_success(self, duration_ns: int) -> None:
        self.success.add(duration_ns)
        self.last_inference_ms = time.time_ns() // 1_000_000
        if self.summaries is not None and self.summaries.request is not None:
            self.summaries.request.observe(duration_ns // 1000)

    def record_failure(self, duration_ns: int, reason: str) -> None:
        self.fail.add(duration_ns)
        self.failures[reason] = self.failures.get(reason, 0) + 1
        self.last_inference_ms = time.time_ns() // 1_000_000

    def record_first_response(self, ns: int) -> None:
        """A request's first response was sent ``ns`` after it arrived (observed in whole milliseconds)."""
        if self.first_response is not None:
            self.first_response.observe(ns // 1_000_000)

    def record_queue(self, ns: int) -> None:
        self.queue.add(ns)
        if self.summaries is not None:
            self.summaries.queue.observe(ns // 1000)

    def record_queues(self, waits_ns: list[int]) -> None:
        """The queue times of a batch's requests."""
        self.queue.add(sum(waits_ns), len(waits_ns))
        if self.summaries is not None:
            for ns in waits_ns:
                self.summaries.queue.observe(ns // 1000)

    def record_cache_hit(self, ns: int) -> None:
        self.cache_hit.add(ns)
        if self.summaries is not None and self.summaries.cache_hit is not None:
            self.summaries.cache_hit.observe(ns // 1000)

    def record_cache_miss(self, ns: int) -> None:
        self.cache_miss.add(ns)
        if self.summaries is not None and self.summaries.cache_miss is not None:
            self.summaries.cache_miss.observe(ns // 1000)

    def record_execution(self, batch_size: int, requests: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One execution of ``requests`` requests holding ``batch_size`` rows in all."""
        self.execution_count += 1
        self.inference_count += batch_size
        self.compute_input.add(input_ns * requests, requests)
        self.compute_infer.add(infer_ns * requests, requests)
        self.compute_output.add(output_ns * requests, requests)
        summaries = self.summaries
        if summaries is not None:
            summaries.compute_input.observe(input_ns // 1000, requests)
            summaries.compute_infer.observe(infer_ns // 1000, requests)
            summaries.compute_output.observe(output_ns // 1000, requests)
        stats = self.batches.get(batch_size)
        if stats is None:
            stats = self.batches[batch_size] = BatchStats()
        stats.compute_input.add(input_ns)
        stats.compute_infer.add(infer_ns)
        stats.compute_output.add(output_ns)

    def as_json(self, name: str, version: str) -> dict:
        """The entry of ``model_stats`` in Triton's statistics JSON."""
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_json(),
                "fail": self.fail.as_json(),
                "queue": self.queue.as_json(),
                "compute_input": self.compute_input.as_json(),
                "compute_infer": self.compute_infer.as_json(),
                "compute_output": self.compute_output.as_json(),
                "cache_hit": self.cache_hit.as_json(),
                "cache_miss": self.cache_miss.as_json(),
            },
            "response_stats": {},
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": stats.compute_input.as_json(),
                    "compute_infer": stats.compute_infer.as_json(),
                    "compute_output": stats.compute_output.as_json(),
                }
                for size, stats in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }
