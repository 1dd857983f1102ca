"""The resources.jsonl GPU fields with a fake NVML (no GPU here): memory, utilisation, temperature and power per
GPU the task may use, a reading the board does not support left out, and the free memory the queue places by."""
from __future__ import annotations

import os
import sys
import types

import pytest

from tuneforge.service import sampler

GIB = 1024 ** 3


class NVMLError(Exception):
    pass


def fake_pynvml(power_supported: bool = True) -> types.ModuleType:
    """Two GPUs: 80 GiB each, GPU i uses (10 + i) GiB, is 50 + 10 i % busy, at 40 + i degrees, draws 300.5 + i W."""
    nv = types.ModuleType("pynvml")
    nv.NVMLError = NVMLError
    nv.NVML_TEMPERATURE_GPU = 0
    nv.nvmlInit = lambda: None
    nv.nvmlDeviceGetCount = lambda: 2

    def handle(i):
        if not 0 <= i < 2:
            raise NVMLError("Invalid Argument")
        return i

    nv.nvmlDeviceGetHandleByIndex = handle
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(10 + h) * GIB, total=80 * GIB,
                                                                free=(70 - h) * GIB)
    nv.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=50 + 10 * h, memory=5)
    nv.nvmlDeviceGetTemperature = lambda h, sensor: 40 + h if sensor == nv.NVML_TEMPERATURE_GPU else -1

    def power(h):
        if not power_supported:
            raise NVMLError("Not Supported")
        return int((300.5 + h) * 1000)  # milliwatts

    nv.nvmlDeviceGetPowerUsage = power
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=2 * GIB)]
    return nv


@pytest.fixture
def with_nvml(monkeypatch):
    def install(**kw):
        monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(**kw))
        monkeypatch.setattr(sampler, "_NVML", None)  # a fresh Nvml() reads the fake
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return sampler.nvml()

    yield install
    sampler._NVML = None  # the next test sees this machine's real NVML (none) again


def test_rows_carry_utilisation_temperature_and_power_per_gpu(with_nvml):
    nv = with_nvml()
    assert nv.available and sampler.gpu_count() == 2
    row = sampler.sample(os.getpid())
    for i in (0, 1):
        assert row[f"gpu{i}_used_gib"] == 10 + i and row[f"gpu{i}_total_gib"] == 80
        assert row[f"gpu{i}_util"] == 50 + 10 * i
        assert row[f"gpu{i}_temperature_c"] == 40 + i
        assert row[f"gpu{i}_power_w"] == pytest.approx(300.5 + i)
        assert row[f"gpu{i}_task_gib"] == 2
    assert nv.free_gib(1) == 69 and nv.free_gib(7) is None  # a device NVML does not know: unknown, not 0


def test_a_reading_the_board_does_not_report_is_left_out(with_nvml, monkeypatch):
    with_nvml(power_supported=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    row = sampler.sample(os.getpid())
    assert row["gpu1_temperature_c"] == 41 and "gpu1_power_w" not in row
    assert not any(k.startswith("gpu0_") for k in row)  # only the GPUs the task may use


def test_no_nvml_means_no_gpu_fields(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as on a machine without nvidia-ml-py
    monkeypatch.setattr(sampler, "_NVML", None)
    try:
        row = sampler.sample(os.getpid())
        assert not sampler.nvml().available and sampler.nvml().free_gib(0) is None
        assert not any(k.startswith("gpu") for k in row)
    finally:
        sampler._NVML = None
