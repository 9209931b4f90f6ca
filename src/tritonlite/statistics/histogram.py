"""The first-response histogram of newer Triton releases (``--metrics-config histogram_latencies=true``).

Triton 2.51 has no histogram; tritonlite follows the documentation (and tests) of the releases
that added it: ``nv_inference_first_response_histogram_ms``, labels ``model`` and ``version``, one
series per loaded version of a decoupled model (an ensemble that streams counts as one), default
buckets 100, 500, 2000 and 5000 ms. Each request that sends at least one response observes, in
whole milliseconds, the time from its arrival to its first response. A model's config.pbtxt may
set its own buckets:

    model_metrics { metric_control [ { metric_identifier { family: "nv_inference_first_response_histogram_ms" }
                                       histogram_options { buckets: [ -1, 0.0, 1, 2.5 ] } } ] }

The exposition is prometheus-cpp's: ``_count``, ``_sum``, then the cumulative ``_bucket`` lines with
``le`` written as numbers are (``100``, ``2.5``), ending with ``+Inf``.
"""

from __future__ import annotations

import bisect
import logging

from tritonlite.protocol import model_config_pb2 as mc

log = logging.getLogger(__name__)

FIRST_RESPONSE_FAMILY = "nv_inference_first_response_histogram_ms"
FIRST_RESPONSE_HELP = "Duration from request to first response in milliseconds"
DEFAULT_BUCKETS: tuple[float, ...] = (100.0, 500.0, 2000.0, 5000.0)


class Histogram:
    """One histogram series: ``observe`` on the request path, ``cumulative`` at scrape time."""

    __slots__ = ("bounds", "counts", "count", "sum")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, the last one past every bound (+Inf)
        self.count = 0
        self.sum: float = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # value <= bound: that bound's bucket
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or under it) for each bound, then (inf, count)."""
        rows: list[tuple[float, int]] = []
        seen = 0
        for bound, times in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += times
            rows.append((bound, seen))
        return rows


def histogram_buckets(config: mc.ModelConfig, family: str = FIRST_RESPONSE_FAMILY) -> tuple[float, ...]:
    """The buckets a model's ``model_metrics`` sets for ``family``, or the defaults.

    prometheus-cpp needs strictly increasing bounds; bounds given out of order or twice are
    sorted and deduplicated, with a warning.
    """
    for control in config.model_metrics.metric_control:
        if control.metric_identifier.family != family or control.WhichOneof("metric_options") != "histogram_options":
            continue
        given = tuple(control.histogram_options.buckets)
        bounds = tuple(sorted(set(given)))
        if bounds != given:
            log.warning(
                "model '%s': the %s buckets %s are not strictly increasing; using %s",
                config.name, family, list(given), list(bounds),
            )  # fmt: skip
        return bounds
    return DEFAULT_BUCKETS
