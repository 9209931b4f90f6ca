"""GPU metrics: rendered from NVML readings (a fake NVML here; the device check uses the real one)."""

from __future__ import annotations

import sys
import types

import pytest

from tritonlite.engine import Engine, EngineOptions
from tritonlite.metrics import gpu as gpu_module
from tritonlite.metrics.families import render


def fake_nvml(count: int = 1):
    nvml = types.ModuleType("pynvml")
    energy = iter([1000.0, 6000.0, 9000.0])
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h:04d}"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=37)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30, used=2**30)
    nvml.nvmlDeviceGetPowerUsage = lambda h: 123456  # milliwatts
    nvml.nvmlDeviceGetPowerManagementLimit = lambda h: 700000
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda h: next(energy)  # millijoules
    return nvml


def idle_engine() -> Engine:
    """An engine with nothing loaded."""
    return Engine(EngineOptions(repositories=[]))


def test_gpu_families_with_triton_names_and_labels(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    metrics = gpu_module.GpuMetrics()
    assert metrics.available
    metrics.readings()  # the first reading starts the energy count
    text = render(idle_engine(), allow_cpu_metrics=False, gpu=metrics)
    assert "# TYPE nv_gpu_utilization gauge" in text
    assert 'nv_gpu_utilization{gpu_uuid="GPU-0000"} 0.37' in text
    assert f'nv_gpu_memory_total_bytes{{gpu_uuid="GPU-0000"}} {80 * 2**30}' in text
    assert 'nv_gpu_memory_used_bytes{gpu_uuid="GPU-0000"} 1073741824' in text
    assert 'nv_gpu_power_usage{gpu_uuid="GPU-0000"} 123.456' in text
    assert 'nv_gpu_power_limit{gpu_uuid="GPU-0000"} 700' in text
    assert 'nv_energy_consumption{gpu_uuid="GPU-0000"} 5' in text  # (6000 - 1000) mJ = 5 J
    for family, help_text in gpu_module.FAMILIES:
        assert f"# HELP {family} {help_text}" in text


def test_no_nvml_means_no_gpu_families(monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    metrics = gpu_module.GpuMetrics()
    assert not metrics.available and metrics.readings() == []
    assert "nv_gpu_" not in render(idle_engine(), allow_cpu_metrics=False, gpu=metrics)


@pytest.mark.skipif("not __import__('importlib').util.find_spec('pynvml')", reason="nvidia-ml-py not installed")
def test_real_nvml_when_a_gpu_is_present():
    metrics = gpu_module.GpuMetrics()
    if not metrics.available:
        pytest.skip("no GPU visible to NVML")
    rows = metrics.readings()
    assert rows and rows[0]["gpu_uuid"].startswith("GPU-") and rows[0]["nv_gpu_memory_total_bytes"] > 0
