"""Trace settings: global ones from --trace-config, per-model overrides from the trace API."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tritonlite.core.errors import ErrorKind, TritonError, invalid_arg

LEVELS = ("OFF", "TIMESTAMPS", "TENSORS")
MODES = ("triton", "opentelemetry")
KEYS = ("trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file", "trace_mode")


@dataclass(frozen=True)
class TraceSettings:
    """One set of trace settings, with Triton's defaults."""

    level: tuple[str, ...] = ("OFF",)
    rate: int = 1000
    count: int = -1
    log_frequency: int = 0
    file: str = ""
    mode: str = "triton"
    # opentelemetry mode (--trace-config opentelemetry,<setting>=<value>); not shown by the trace API
    otel_url: str = "http://localhost:4318/v1/traces"
    otel_resource: tuple[tuple[str, str], ...] = ()
    otel_bsp: tuple[tuple[str, int], ...] = ()

    @property
    def active(self) -> bool:
        return any(level != "OFF" for level in self.level) and self.count != 0

    def as_json(self) -> dict:
        """The settings as the trace API shows them (numbers as strings, as Triton does)."""
        return {
            "trace_level": list(self.level),
            "trace_rate": str(self.rate),
            "trace_count": str(self.count),
            "log_frequency": str(self.log_frequency),
            "trace_file": self.file,
            "trace_mode": self.mode,
        }


@dataclass
class TraceConfig:
    """Global settings plus per-model overrides (only the keys a model set)."""

    base: TraceSettings = field(default_factory=TraceSettings)
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)

    def effective(self, model: str = "") -> TraceSettings:
        changes = self.overrides.get(model) if model else None
        return replace(self.base, **changes) if changes else self.base


def _as_int(key: str, value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise invalid_arg(f"Unable to parse '{key}', got: {value}") from None


def parse_update(update: dict[str, object | None], current: TraceSettings) -> dict[str, object | None]:
    """Validate a trace API update; returns field changes (None = back to the global value)."""
    changes: dict[str, object | None] = {}
    for key, value in update.items():
        if key == "trace_file":
            raise TritonError(ErrorKind.UNSUPPORTED, "trace file location can not be updated through network protocol")
        if key not in KEYS:
            continue
        name = {"trace_level": "level", "trace_rate": "rate", "trace_count": "count",
                "log_frequency": "log_frequency", "trace_mode": "mode"}[key]  # fmt: skip
        if value is None:
            changes[name] = None
        elif key == "trace_level":
            values = value if isinstance(value, list) else [value]
            levels = tuple(str(v).upper() for v in values if str(v).upper() in LEVELS)
            if levels:  # Triton ignores level names it does not know
                changes[name] = levels
        elif key == "trace_mode":
            if str(value) not in MODES:
                raise invalid_arg(f"Unable to parse 'trace_mode', got: {value}")
            changes[name] = str(value)
        else:
            changes[name] = _as_int(key, value)
    merged = replace(current, **{k: v for k, v in changes.items() if v is not None})
    if merged.active and not merged.file and merged.mode == "triton":
        raise invalid_arg("Attempting to set invalid trace setting :trace file name is not given")
    return changes


OTEL_BSP = ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size")


def parse_trace_config(values: list[str]) -> TraceSettings:
    """``--trace-config [mode,]key=value`` options (and level, rate, count, file, log-frequency;
    opentelemetry,url / resource / bsp_*)."""
    fields: dict[str, object] = {}
    resource: list[tuple[str, str]] = []
    bsp: list[tuple[str, int]] = []
    for value in values:
        mode, sep, setting = value.partition(",")
        if not sep:
            mode, setting = "", value
        key, eq, item = setting.partition("=")
        if not eq:
            raise ValueError(f"--trace-config option format is '[<mode>,]<setting>=<value>'. Got {value}")
        if mode and mode not in ("triton", "opentelemetry"):
            raise ValueError(f"unknown trace mode '{mode}' in --trace-config {value}")
        if mode == "opentelemetry":
            key = key.strip()
            if key == "url":
                fields["otel_url"] = item
            elif key == "resource":
                name, has_value, attribute = item.partition("=")
                if not has_value or not name:
                    raise ValueError(f"--trace-config opentelemetry,resource=<key>=<value>. Got {value}")
                resource.append((name, attribute))
            elif key in OTEL_BSP:
                try:
                    bsp.append((key, int(item)))
                except ValueError:
                    raise ValueError(f"invalid value for {key} in --trace-config {value}") from None
            else:
                raise ValueError(f"unknown opentelemetry trace setting '{key}' in --trace-config {value}")
            continue
        key = key.strip().replace("_", "-")
        if key == "mode":
            if item not in MODES:
                raise ValueError(f"unknown trace mode '{item}' in --trace-config {value}")
            fields["mode"] = item
        elif key == "level":
            level = item.upper()
            if level not in LEVELS:
                raise ValueError(f"invalid trace level '{item}' (OFF, TIMESTAMPS or TENSORS)")
            previous = tuple(lv for lv in fields.get("level", ()) if lv != "OFF")  # type: ignore[union-attr]
            fields["level"] = ("OFF",) if level == "OFF" else previous + (level,)
        elif key in ("rate", "count", "log-frequency"):
            fields[key.replace("-", "_")] = int(item)
        elif key == "file":
            fields["file"] = item
        else:
            raise ValueError(f"unknown trace setting '{key}' in --trace-config {value}")
    if fields.get("mode") == "opentelemetry":
        from tritonlite.tracing.otel import require

        require()  # a clear error at startup when the otel extra is missing
    return TraceSettings(**fields, otel_resource=tuple(resource), otel_bsp=tuple(bsp))  # type: ignore[arg-type]
