"""``--metrics-config`` and ``--metrics-interval-ms``, with Triton's rules.

Triton 2.51 knows three settings: ``counter_latencies`` (only the exact value ``false`` turns the
``*_duration_us`` counters off), ``summary_latencies`` (only ``true`` turns the ``*_summary_us``
summaries on) and ``summary_quantiles`` (``<quantile>:<error>,...``; a bad item is skipped with an
error line, and with no good item the defaults stay). Newer Triton releases add
``histogram_latencies`` (only ``true`` turns ``nv_inference_first_response_histogram_ms`` on, for
decoupled models); tritonlite follows their documentation there. Any other setting is accepted and
changes nothing; tritonlite says so in a warning. See tests/reference_data/metrics/.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUANTILES: tuple[tuple[float, float], ...] = ((0.5, 0.05), (0.9, 0.01), (0.95, 0.001), (0.99, 0.001),
                                                      (0.999, 0.001))  # fmt: skip
DEFAULT_INTERVAL_MS = 2000.0
KNOWN = ("counter_latencies", "summary_latencies", "summary_quantiles", "histogram_latencies")
# settings that are accepted and ignored, with the reason the warning gives
LATER = {
    "model_load_time": "nv_model_load_duration_secs is always exposed, no setting needed",
}


@dataclass(frozen=True)
class MetricsConfig:
    counter_latencies: bool = True
    summary_latencies: bool = False
    histogram_latencies: bool = False
    quantiles: tuple[tuple[float, float], ...] = DEFAULT_QUANTILES
    interval_ms: float = DEFAULT_INTERVAL_MS


def parse_quantiles(text: str) -> tuple[list[tuple[float, float]], list[str]]:
    """``0.5:0.05,0.9:0.01`` -> pairs, plus Triton's error line for each item it skips."""
    pairs: list[tuple[float, float]] = []
    errors: list[str] = []
    for item in text.split(","):
        if ":" not in item:
            errors.append(f"Invalid option: [{item}]. No ':' delimiter found. Expected format is <quantile>:<error>")
            continue
        quantile, _, error = item.partition(":")
        try:
            pairs.append((float(quantile), float(error)))
        except ValueError:
            errors.append(f"Invalid option: [{item}]. Error: stod")
    return pairs, errors


def parse_metrics_config(values: list[str], interval_ms: str | None = None) -> tuple[MetricsConfig, list[str]]:
    """The flags' values -> (config, log lines to report). Raises ValueError with Triton's text."""
    settings: dict[str, str] = {}
    for value in values:
        key, eq, item = value.partition("=")
        if not eq:
            raise ValueError(
                f'Bad option: "--metrics-config".\n--metrics-config option format is <setting>=<value>. Got {value}'
            )
        settings[key] = item
    interval = DEFAULT_INTERVAL_MS
    if interval_ms is not None:
        try:
            interval = float(interval_ms)
        except ValueError:
            raise ValueError(f'Bad option: "--metrics-interval-ms".\nInvalid option value. Got {interval_ms}') from None
    notes: list[str] = []
    quantiles = DEFAULT_QUANTILES
    if "summary_quantiles" in settings:
        pairs, notes = parse_quantiles(settings["summary_quantiles"])
        if pairs:
            quantiles = tuple(pairs)
    for key in settings:
        if key not in KNOWN:
            why = LATER.get(key, "Triton 2.51 has no such setting")
            notes.append(f"--metrics-config {key}={settings[key]} has no effect ({why}; Triton ignores it too)")
    config = MetricsConfig(
        counter_latencies=settings.get("counter_latencies") != "false",
        summary_latencies=settings.get("summary_latencies") == "true",
        histogram_latencies=settings.get("histogram_latencies") == "true",
        quantiles=quantiles,
        interval_ms=interval,
    )
    return config, notes
