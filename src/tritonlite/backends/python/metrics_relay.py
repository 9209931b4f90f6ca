"""Custom metrics of a model in a stub process, relayed to the server's registry.

In the stub, ``pb_utils`` registers metrics in a ``JournalingMetrics``: a registry of its own (so
the model's calls are checked and ``value()`` answers at once) that also writes down each change.
Before each answer to tritonlite the stub sends the changes (``("metrics", ops)``); the instance's
``MetricsMirror`` applies them to the server's registry, and lets go of everything the stub held
when the stub ends.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tritonlite.statistics.custom_metrics import (
    REGISTRY,
    CustomMetricError,
    CustomMetrics,
    Family,
    LabelKey,
    MetricKind,
    Series,
)

log = logging.getLogger(__name__)

Op = tuple[Any, ...]


class JournalingMetrics(CustomMetrics):
    """The stub's registry: every change is also an op for the server's."""

    def __init__(self) -> None:
        super().__init__()
        self._ops: list[Op] = []
        self._ops_lock = threading.Lock()

    def _note(self, *op: Any) -> None:
        with self._ops_lock:
            self._ops.append(op)

    def take(self) -> list[Op]:
        """The changes since the last call."""
        with self._ops_lock:
            ops, self._ops = self._ops, []
        return ops

    def family(self, name: str, description: str, kind: MetricKind) -> Family:
        family = super().family(name, description, kind)
        self._note("family", name, description, int(kind))
        return family

    def release_family(self, family: Family) -> None:
        super().release_family(family)
        self._note("release_family", family.name)

    def metric(self, family: Family, labels: dict[str, str], buckets: list[float] | None = None) -> Series:
        series = super().metric(family, labels, buckets)
        self._note("metric", family.name, series.labels, list(series.buckets) if buckets is not None else None)
        return series

    def release_metric(self, family: Family, series: Series) -> None:
        super().release_metric(family, series)
        self._note("release_metric", family.name, series.labels)

    def increment(self, family: Family, series: Series, value: float) -> None:
        super().increment(family, series, value)
        self._note("increment", family.name, series.labels, value)

    def set(self, family: Family, series: Series, value: float) -> None:
        super().set(family, series, value)
        self._note("set", family.name, series.labels, value)

    def observe(self, family: Family, series: Series, value: float) -> None:
        super().observe(family, series, value)
        self._note("observe", family.name, series.labels, value)


class MetricsMirror:
    """tritonlite's side for one stub: what it holds in the server's registry."""

    def __init__(self, registry: CustomMetrics = REGISTRY) -> None:
        self.registry = registry
        self.families: dict[str, list[Family]] = {}  # one entry per hold
        self.series: dict[tuple[str, LabelKey], list[Series]] = {}

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            try:
                self._apply(op)
            except CustomMetricError as exc:  # another model's family of the same name, say
                log.warning("custom metric change %s of a stub process not applied: %s", op[:2], exc)

    def _apply(self, op: Op) -> None:
        kind, name = op[0], op[1]
        registry = self.registry
        if kind == "family":
            self.families.setdefault(name, []).append(registry.family(name, op[2], MetricKind(op[3])))
            return
        held = self.families.get(name)
        if not held:
            return
        family = held[-1]
        if kind == "release_family":
            registry.release_family(held.pop())
            return
        key = (name, op[2])
        if kind == "metric":
            series = registry.metric(family, dict(op[2]), op[3])
            self.series.setdefault(key, []).append(series)
            return
        owned = self.series.get(key)
        if not owned:
            return
        if kind == "release_metric":
            registry.release_metric(family, owned.pop())
        elif kind == "increment":
            registry.increment(family, owned[-1], op[3])
        elif kind == "set":
            registry.set(family, owned[-1], op[3])
        elif kind == "observe":
            registry.observe(family, owned[-1], op[3])

    def release_all(self) -> None:
        """The stub is gone: its metrics go with it."""
        for (name, _), owned in self.series.items():
            family = self.families.get(name)
            for series in owned:
                if family:
                    self.registry.release_metric(family[-1], series)
        for held in self.families.values():
            for family in held:
                self.registry.release_family(family)
        self.series.clear()
        self.families.clear()
