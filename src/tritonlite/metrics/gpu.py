"""GPU metrics through NVML (nvidia-ml-py), as Triton reports them; nothing without a GPU.

Readings are taken at scrape time. Energy is counted from the first reading (Triton counts
from server start), in joules.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

FAMILIES = [
    ("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)"),
    ("nv_gpu_memory_total_bytes", "GPU total memory, in bytes"),
    ("nv_gpu_memory_used_bytes", "GPU used memory, in bytes"),
    ("nv_gpu_power_usage", "GPU power usage in watts"),
    ("nv_gpu_power_limit", "GPU power management limit in watts"),
    ("nv_energy_consumption", "GPU energy consumption in joules since the Triton Server started"),
]


class GpuMetrics:
    """Reads every visible GPU through NVML; ``available`` is False where NVML is missing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start_energy: dict[str, float] = {}
        self.nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() > 0:
                self.nvml = pynvml
        except Exception:  # no driver, no library, no GPU: no GPU metrics
            self.nvml = None

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def readings(self) -> list[dict]:
        """One dict per GPU: uuid and the values of FAMILIES."""
        nvml = self.nvml
        if nvml is None:
            return []
        rows = []
        with self._lock:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = nvml.nvmlDeviceGetUUID(handle)
                uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
                row = {"gpu_uuid": uuid}
                try:
                    row["nv_gpu_utilization"] = nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
                except Exception:
                    row["nv_gpu_utilization"] = 0.0
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                row["nv_gpu_memory_total_bytes"] = int(memory.total)
                row["nv_gpu_memory_used_bytes"] = int(memory.used)
                row["nv_gpu_power_usage"] = _safe(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
                row["nv_gpu_power_limit"] = _safe(lambda h=handle: nvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0)
                energy = _safe(lambda h=handle: nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
                start = self._start_energy.setdefault(uuid, energy)
                row["nv_energy_consumption"] = max(energy - start, 0.0)
                rows.append(row)
        return rows


def _safe(read) -> float:
    try:
        return float(read())
    except Exception:
        return 0.0
