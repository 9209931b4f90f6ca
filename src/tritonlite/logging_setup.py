"""Log lines shaped like Triton's: ``I1126 13:09:53.056450 2290 file.py:12] "message"``."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass

from tritonlite.core.errors import ErrorKind, TritonError


class TritonFormatter(logging.Formatter):
    """Triton's two log formats: ``default`` and ``ISO8601``.

    As Triton (2.51), a message is quoted with its quotes, backslashes and control characters
    escaped, so one event is one line; a message that starts with a newline is a block (the startup
    tables) and is written as it is.
    """

    def __init__(self, log_format: str = "default") -> None:
        super().__init__()
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        micros = int((record.created - seconds) * 1_000_000)
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        if not text.startswith("\n"):
            text = json.dumps(text, ensure_ascii=False)
        where = f"{record.process} {record.filename}:{record.lineno}] {text}"
        if self.log_format == "ISO8601":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
            return f"{stamp} {record.levelname[0]} {where}"
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(seconds))
        return f"{record.levelname[0]}{stamp}.{micros:06d} {where}"


LOG_FORMATS = ("default", "ISO8601")


@dataclass
class LogSettings:
    """What the logging extension shows and changes at run time."""

    log_file: str = ""
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_verbose_level: int = 0
    log_format: str = "default"

    def as_json(self) -> dict:
        return {
            "log_file": self.log_file,
            "log_info": self.log_info,
            "log_warning": self.log_warning,
            "log_error": self.log_error,
            "log_verbose_level": self.log_verbose_level,
            "log_format": self.log_format,
        }


class _LevelSwitch(logging.Filter):
    """Lets each of info, warning and error be switched on and off on its own, as in Triton."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return current.log_error
        if record.levelno >= logging.WARNING:
            return current.log_warning
        if record.levelno >= logging.INFO:
            return current.log_info
        return current.log_verbose_level > 0


current = LogSettings()


def _apply() -> None:
    if current.log_file:
        handler: logging.Handler = logging.FileHandler(current.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TritonFormatter(current.log_format))
    handler.addFilter(_LevelSwitch())
    root = logging.getLogger()
    for old in root.handlers:
        if old is not handler and isinstance(old, logging.FileHandler):
            old.close()
    root.handlers[:] = [handler]
    level = logging.DEBUG if current.log_verbose_level > 0 else logging.INFO
    root.setLevel(level)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def configure(
    verbose: int = 0, info: bool = True, warning: bool = True, error: bool = True,
    log_format: str = "default", log_file: str = "",
) -> None:  # fmt: skip
    global current
    current = LogSettings(log_file, info, warning, error, verbose, log_format)
    _apply()


def update(changes: dict) -> dict:
    """Apply a logging-extension update (unknown keys are ignored, as in Triton)."""
    global current
    values = current.as_json()
    for key, value in changes.items():
        if key not in values or value is None:
            continue
        if key == "log_verbose_level":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TritonError(ErrorKind.INTERNAL, "attempt to access JSON non-unsigned-integer as unsigned-integer")
        elif key in ("log_info", "log_warning", "log_error"):
            if not isinstance(value, bool):
                raise TritonError(ErrorKind.INTERNAL, "attempt to access JSON non-boolean as boolean")
        elif key == "log_format":
            if value not in LOG_FORMATS:
                raise TritonError(ErrorKind.UNAVAILABLE, f"invalid argument for --log_format, got: {value}")
        elif not isinstance(value, str):
            raise TritonError(ErrorKind.INTERNAL, "attempt to access JSON non-string as string")
        values[key] = value
    current = LogSettings(**values)
    _apply()
    return current.as_json()


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An ASCII table like the ones Triton prints at startup; a cell with several lines spans as
    many table lines, the box kept whole."""
    split_rows = [[cell.rstrip("\n").split("\n") for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in split_rows:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(text) for text in lines))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c:<{widths[i]}} " for i, c in enumerate(cells)) + "|"

    body = []
    for row in split_rows:
        height = max(len(lines) for lines in row)
        for index in range(height):
            body.append(line([lines[index] if index < len(lines) else "" for lines in row]))
    return "\n".join([rule, line(headers), rule, *body, rule])
