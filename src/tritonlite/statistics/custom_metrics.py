"""Metrics that models define (``pb_utils.MetricFamily``), served beside Triton's on :8002.

One registry per server, as Triton's: a family is known by its name (the same name and kind from
two models is one family), a metric by its family and labels (the same labels are one series).
Both live while some model holds them; the exposition writes them as prometheus-cpp does
(labels sorted by name, ``le`` last, numbers as ``%.16g``). Model threads update them, the
metrics endpoint reads them: one lock.
"""

from __future__ import annotations

import bisect
import enum
import re
import threading
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class MetricKind(enum.IntEnum):
    """TRITONSERVER_MetricKind."""

    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2

    @property
    def triton_name(self) -> str:
        return f"TRITONSERVER_METRIC_KIND_{self.name}"


class CustomMetricError(Exception):
    """What Triton's metrics API answers (the python backend wraps it in its own words)."""


LabelKey = tuple[tuple[str, str], ...]


@dataclass(eq=False)
class Series:
    """One metric: a family's series with these labels."""

    labels: LabelKey
    buckets: tuple[float, ...] = ()
    value: float = 0.0  # counters and gauges
    counts: list[int] = field(default_factory=list)  # histograms: per bucket, not cumulative
    total: float = 0.0  # histograms: the sum of observations
    observations: int = 0
    holders: int = 0


@dataclass(eq=False)
class Family:
    name: str
    description: str
    kind: MetricKind
    series: dict[LabelKey, Series] = field(default_factory=dict)
    holders: int = 0


class CustomMetrics:
    """The registry; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, Family] = {}

    # --- families and metrics ------------------------------------------------------------------

    def family(self, name: str, description: str, kind: MetricKind) -> Family:
        """The family of this name (created, or the existing one of the same kind), held once more."""
        if not _NAME.match(name):
            raise CustomMetricError(f"Invalid metric name '{name}'")
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = self._families[name] = Family(name, description, kind)
            elif family.kind != kind:
                raise CustomMetricError("Family name already exists with different type")
            family.holders += 1
            return family

    def release_family(self, family: Family) -> None:
        with self._lock:
            family.holders -= 1
            if family.holders <= 0 and not family.series and self._families.get(family.name) is family:
                del self._families[family.name]

    def metric(self, family: Family, labels: dict[str, str], buckets: list[float] | None = None) -> Series:
        """The series of ``labels`` in ``family`` (created, or the existing one), held once more."""
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise CustomMetricError("attempt to access JSON non-string as string")
            if not _LABEL.match(key) or key == "le" and family.kind == MetricKind.HISTOGRAM:
                raise CustomMetricError(f"Invalid label name '{key}'")
        bounds: tuple[float, ...] = ()
        if family.kind == MetricKind.HISTOGRAM:
            bounds = tuple(float(b) for b in buckets or ())
            if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
                raise CustomMetricError("Bucket Boundaries must be strictly sorted")
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = family.series.get(key)
            if series is None:
                series = family.series[key] = Series(key, bounds, counts=[0] * (len(bounds) + 1))
                if family.name not in self._families:  # released meanwhile: it comes back
                    self._families[family.name] = family
            series.holders += 1
            return series

    def release_metric(self, family: Family, series: Series) -> None:
        with self._lock:
            series.holders -= 1
            if series.holders <= 0 and family.series.get(series.labels) is series:
                del family.series[series.labels]
            if family.holders <= 0 and not family.series and self._families.get(family.name) is family:
                del self._families[family.name]

    # --- values ----------------------------------------------------------------------------------

    def increment(self, family: Family, series: Series, value: float) -> None:
        if family.kind == MetricKind.HISTOGRAM:
            raise CustomMetricError(f"{family.kind.triton_name} does not support Increment")
        if family.kind == MetricKind.COUNTER and value < 0:
            raise CustomMetricError(
                f"{family.kind.triton_name} can only be incremented monotonically by non-negative values."
            )
        with self._lock:
            series.value += value

    def set(self, family: Family, series: Series, value: float) -> None:
        if family.kind != MetricKind.GAUGE:
            raise CustomMetricError(f"{family.kind.triton_name} does not support Set")
        with self._lock:
            series.value = value

    def observe(self, family: Family, series: Series, value: float) -> None:
        if family.kind != MetricKind.HISTOGRAM:
            raise CustomMetricError(f"{family.kind.triton_name} does not support Observe")
        with self._lock:
            series.counts[bisect.bisect_left(series.buckets, value)] += 1
            series.total += value
            series.observations += 1

    def value(self, family: Family, series: Series) -> float:
        if family.kind == MetricKind.HISTOGRAM:
            raise CustomMetricError(f"{family.kind.triton_name} does not support Value")
        with self._lock:
            return series.value

    # --- exposition ------------------------------------------------------------------------------

    def render(self) -> list[str]:
        """Prometheus text lines of every family, in the order they were made."""
        lines: list[str] = []
        with self._lock:
            for family in self._families.values():
                lines.append(f"# HELP {family.name} {_escape_help(family.description)}")
                lines.append(f"# TYPE {family.name} {family.kind.name.lower()}")
                for key in sorted(family.series):
                    series = family.series[key]
                    if family.kind != MetricKind.HISTOGRAM:
                        lines.append(f"{family.name}{_labels(key)} {_number(series.value)}")
                        continue
                    lines.append(f"{family.name}_count{_labels(key)} {series.observations}")
                    lines.append(f"{family.name}_sum{_labels(key)} {_number(series.total)}")
                    cumulative = 0
                    for bound, count in zip((*series.buckets, None), series.counts, strict=True):
                        cumulative += count
                        le = "+Inf" if bound is None else _number(bound)
                        lines.append(f"{family.name}_bucket{_labels((*key, ('le', le)))} {cumulative}")
        return lines


def _number(value: float) -> str:
    """As prometheus-cpp writes a double."""
    if value != value:
        return "Nan"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return format(value, ".16g")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: LabelKey) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{key}="{_escape_value(value)}"' for key, value in pairs)
    return "{" + inner + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# The server's registry: models in this process register here; a stub process's models reach it
# through their instance (see backends/python/metrics_relay.py).
REGISTRY = CustomMetrics()
