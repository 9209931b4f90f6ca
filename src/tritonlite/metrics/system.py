"""CPU utilization and memory from /proc, as Triton's CPU metrics report them."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_last: tuple[int, int] | None = None  # (busy, total) jiffies at the previous reading


def _read_cpu() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def cpu_utilization() -> float:
    """Share of CPU time busy since the previous call (0.0 on the first call), in [0, 1]."""
    global _last
    now = _read_cpu()
    if now is None:
        return 0.0
    with _lock:
        previous, _last = _last, now
    if previous is None or now[1] <= previous[1]:
        return 0.0
    return max(0.0, min(1.0, (now[0] - previous[0]) / (now[1] - previous[1])))


def cpu_memory() -> tuple[int, int]:
    """(total, used) bytes of RAM; used is total minus available."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    total = info.get("MemTotal", 0)
    return total, total - info.get("MemAvailable", info.get("MemFree", 0))


class SystemReadings:
    """CPU (and GPU) readings refreshed every ``--metrics-interval-ms``, as Triton's poll thread does.

    A scrape shows the latest readings; CPU utilization is the busy share over the last interval.
    With an interval of 0 or less, readings are taken at each scrape instead.
    """

    def __init__(self, allow_cpu: bool, gpu=None, interval_ms: float = 2000.0) -> None:
        self.allow_cpu = allow_cpu
        self.gpu = gpu if gpu is not None and gpu.available else None
        self.interval_s = interval_ms / 1000.0
        self.cpu: tuple[float, int, int] = (0.0, 0, 0)  # utilization, total bytes, used bytes
        self.gpu_rows: list[dict] = []
        self.refreshes = 0
        self.refresh()

    def refresh(self) -> None:
        if self.allow_cpu:
            self.cpu = (cpu_utilization(), *cpu_memory())
        if self.gpu is not None:
            self.gpu_rows = self.gpu.readings()
        self.refreshes += 1

    def current(self) -> SystemReadings:
        if self.interval_s <= 0:
            self.refresh()
        return self

    async def run(self) -> None:
        """Refresh until cancelled (started by the server beside the metrics endpoint)."""
        import asyncio

        if self.interval_s <= 0:
            return
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self.refresh)
