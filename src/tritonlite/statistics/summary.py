"""Prometheus summaries as Triton 2.51 exposes them (``--metrics-config summary_latencies=true``).

Triton uses prometheus-cpp's summary: ``_count`` and ``_sum`` since start, and quantiles over a
sliding window of 60 s kept in 5 buckets (so the window is 48 to 60 s long). A quantile is
answered with prometheus-cpp's CKMS query rule, applied here to the window's exact observations:
with ``n`` observations, ``rank = floor(q * n)``, ``bound = rank + allowable_error(rank) / 2``
(the smallest error any configured quantile allows at that rank), the answer is the
``max(bound, 1)``-th smallest observation. For the small counts of a test this gives the very
values Triton prints; for large counts both are approximations of the same quantile. An empty
window prints ``Nan``.

Observations are integer microseconds, kept as value -> count per 12 s slice; values of 4096 µs
and more are rounded down to 12 significant bits (under 0.05%), so memory stays bounded however
many requests arrive.
"""

from __future__ import annotations

import math
import time
from collections import deque

MAX_AGE_S = 60.0
AGE_BUCKETS = 5


def _allowable_error(rank: int, n: int, quantiles: tuple[tuple[float, float], ...]) -> float:
    smallest = float(n + 1)
    for quantile, error in quantiles:
        if rank <= quantile * n:
            allowed = (2.0 * error / (1.0 - quantile)) * (n - rank) if quantile < 1.0 else 0.0
        else:
            allowed = (2.0 * error / quantile) * rank
        smallest = min(smallest, allowed)
    return smallest


def _quantize(value: int) -> int:
    if value < 4096:
        return value
    shift = value.bit_length() - 12
    return (value >> shift) << shift


class Summary:
    """One summary series: ``observe`` on the request path, ``collect`` at scrape time."""

    __slots__ = ("quantiles", "count", "sum", "_slices", "_start", "_slice_s", "_clock")

    def __init__(self, quantiles: tuple[tuple[float, float], ...], clock=time.monotonic) -> None:
        self.quantiles = quantiles
        self.count = 0
        self.sum = 0
        self._clock = clock
        self._start = clock()
        self._slice_s = MAX_AGE_S / AGE_BUCKETS
        self._slices: deque[tuple[int, dict[int, int]]] = deque()

    def observe(self, value: int, times: int = 1) -> None:
        self.count += times
        self.sum += value * times
        index = int((self._clock() - self._start) / self._slice_s)
        slices = self._slices
        if not slices or slices[-1][0] != index:
            slices.append((index, {}))
            while slices[0][0] <= index - AGE_BUCKETS:
                slices.popleft()
        bucket = slices[-1][1]
        key = _quantize(value)
        bucket[key] = bucket.get(key, 0) + times

    def window(self) -> list[tuple[int, int]]:
        """(value, count) pairs of the current window, sorted by value."""
        index = int((self._clock() - self._start) / self._slice_s)
        merged: dict[int, int] = {}
        for number, bucket in self._slices:
            if number > index - AGE_BUCKETS:
                for value, times in bucket.items():
                    merged[value] = merged.get(value, 0) + times
        return sorted(merged.items())

    def collect(self) -> list[tuple[float, float]]:
        """(quantile, value) for each configured quantile; NaN with an empty window."""
        values = self.window()
        n = sum(times for _, times in values)
        if n == 0:
            return [(q, math.nan) for q, _ in self.quantiles]
        answers = []
        for quantile, _ in self.quantiles:
            rank = math.floor(quantile * n)
            bound = int(rank + _allowable_error(rank, n, self.quantiles) / 2)
            wanted = min(max(bound, 1), n)  # 1-based position in the sorted observations
            seen = 0
            for value, times in values:
                seen += times
                if seen >= wanted:
                    answers.append((quantile, float(value)))
                    break
        return answers


# (key, family, help): the latency summaries of one model version, in Triton's order
LATENCY_FAMILIES = [
    ("request", "nv_inference_request_summary_us",
     "Summary of inference request duration in microseconds (includes cached requests)"),
    ("queue", "nv_inference_queue_summary_us",
     "Summary of inference queuing duration in microseconds (includes cached requests)"),
    ("compute_input", "nv_inference_compute_input_summary_us",
     "Cumulative compute input duration in microseconds (does not include cached requests)"),
    ("compute_infer", "nv_inference_compute_infer_summary_us",
     "Cumulative compute inference duration in microseconds (does not include cached requests)"),
    ("compute_output", "nv_inference_compute_output_summary_us",
     "Cumulative inference compute output duration in microseconds (does not include cached requests)"),
    ("cache_hit", "nv_cache_hit_summary_per_model",
     "Summary of cache hit counts/durations per model, in microseconds."),
    ("cache_miss", "nv_cache_miss_summary_per_model",
     "Summary of cache miss counts/durations per model, in microseconds."),
]  # fmt: skip


class LatencySummaries:
    """The summaries of one model version. As in Triton, a model that enables the response cache
    has no request summary (its FIXME DLIS-4762) but has the cache hit and miss summaries."""

    __slots__ = ("request", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")

    def __init__(self, quantiles: tuple[tuple[float, float], ...], cache_enabled: bool = False) -> None:
        self.request = None if cache_enabled else Summary(quantiles)
        self.queue = Summary(quantiles)
        self.compute_input = Summary(quantiles)
        self.compute_infer = Summary(quantiles)
        self.compute_output = Summary(quantiles)
        self.cache_hit = Summary(quantiles) if cache_enabled else None
        self.cache_miss = Summary(quantiles) if cache_enabled else None
