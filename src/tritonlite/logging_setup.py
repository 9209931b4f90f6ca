"""Log lines shaped like Triton's: ``I1126 13:09:53.056450 2290 file.py:12] message``."""

from __future__ import annotations

import logging
import sys
import time


class TritonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(seconds))
        micros = int((record.created - seconds) * 1_000_000)
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return f"{record.levelname[0]}{stamp}.{micros:06d} {record.process} {record.filename}:{record.lineno}] {text}"


def configure(verbose: int = 0, info: bool = True, warning: bool = True, error: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TritonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if verbose > 0:
        level = logging.DEBUG
    elif info:
        level = logging.INFO
    elif warning:
        level = logging.WARNING
    elif error:
        level = logging.ERROR
    else:
        level = logging.CRITICAL + 1
    root.setLevel(level)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An ASCII table like the ones Triton prints at startup."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c:<{widths[i]}} " for i, c in enumerate(cells)) + "|"

    return "\n".join([rule, line(headers), rule, *(line(r) for r in rows), rule])
