"""The monitoring record: one ``resources.jsonl`` row every few seconds while a task runs.

Row fields (stable names): ``time`` (Unix seconds), ``host_rss_gib`` (resident memory of the task's whole
process tree), ``host_total_gib``, ``host_available_gib``, and per GPU the task may use (NVML index ``i``)
``gpu{i}_used_gib``, ``gpu{i}_total_gib``, ``gpu{i}_util`` (percent), ``gpu{i}_temperature_c`` (degrees Celsius,
the GPU die), ``gpu{i}_power_w`` (watts drawn by the board) and, where the driver reports per-process memory,
``gpu{i}_task_gib`` (the task's processes only). Without GPUs (or NVML) the GPU fields are absent; a field the
driver does not report (power on some boards) is left out of the row.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psutil

GIB = 1024 ** 3


class Nvml:
    """NVML through nvidia-ml-py; ``available`` is False on a machine without an NVIDIA driver."""

    def __init__(self) -> None:
        self.available = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nv = pynvml
            self.count = pynvml.nvmlDeviceGetCount()
            self.available = True
        except Exception:  # no library, no driver, no device: the GPU fields are simply absent
            self.count = 0

    # (field suffix, reading): utilisation in percent, temperature in degrees C, power in W (NVML gives mW)
    _READINGS = (
        ("util", lambda nv, h: nv.nvmlDeviceGetUtilizationRates(h).gpu),
        ("temperature_c", lambda nv, h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
        ("power_w", lambda nv, h: round(nv.nvmlDeviceGetPowerUsage(h) / 1000.0, 1)),
    )

    def free_gib(self, index: int) -> float | None:
        """Free memory of GPU ``index`` now (what the queue places tasks by), or None when NVML cannot tell."""
        if not self.available:
            return None
        try:
            return self._nv.nvmlDeviceGetMemoryInfo(self._nv.nvmlDeviceGetHandleByIndex(index)).free / GIB
        except Exception:  # a device that vanished or errs: unknown, so nothing is placed on it by memory
            return None

    def device_row(self, index: int, pids: set[int]) -> dict[str, float]:
        nv = self._nv
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        row = {f"gpu{index}_used_gib": round(mem.used / GIB, 3), f"gpu{index}_total_gib": round(mem.total / GIB, 3)}
        for key, read in self._READINGS:
            try:
                row[f"gpu{index}_{key}"] = float(read(nv, handle))
            except Exception:  # NVMLError "Not Supported" on this board, or an older binding: leave it out
                pass
        try:
            procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
            used = [p.usedGpuMemory for p in procs if p.pid in pids and p.usedGpuMemory is not None]
            if used:
                row[f"gpu{index}_task_gib"] = round(sum(used) / GIB, 3)
        except nv.NVMLError:  # per-process figures need driver support (and the same PID namespace)
            pass
        return row


_NVML: Nvml | None = None


def nvml() -> Nvml:
    global _NVML
    if _NVML is None:
        _NVML = Nvml()
    return _NVML


def gpu_count() -> int:
    return nvml().count


def visible_gpu_indices(count: int) -> list[int]:
    """The NVML indices this process may use: ``CUDA_VISIBLE_DEVICES`` when it lists indices, else all."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return list(range(count))
    try:
        return [int(v) for v in value.split(",") if v.strip() and 0 <= int(v) < count]
    except ValueError:  # UUIDs: record every device rather than guess
        return list(range(count))


def process_tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def sample(root_pid: int, gpus: list[int] | None = None) -> dict:
    """One resources.jsonl row for the process tree under ``root_pid``."""
    procs = process_tree(root_pid)
    rss = 0
    for proc in procs:
        try:
            rss += proc.memory_info().rss
        except psutil.Error:  # a child that just exited
            pass
    vm = psutil.virtual_memory()
    row: dict = {"time": round(time.time(), 3), "host_rss_gib": round(rss / GIB, 4),
                 "host_total_gib": round(vm.total / GIB, 3), "host_available_gib": round(vm.available / GIB, 3)}
    nv = nvml()
    if nv.available:
        pids = {p.pid for p in procs}
        for index in (gpus if gpus is not None else visible_gpu_indices(nv.count)):
            try:
                row.update(nv.device_row(index, pids))
            except Exception:  # a device that vanished or errs: leave its fields out of this row
                pass
    return row


class ResourceSampler:
    """A daemon thread appending a row for ``root_pid``'s tree to ``path`` every ``interval`` seconds."""

    def __init__(self, root_pid: int, path: Path, interval: float = 2.0):
        self.root_pid, self.path, self.interval = root_pid, Path(path), max(float(interval), 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-resources", daemon=True)

    def start(self) -> "ResourceSampler":
        self._thread.start()
        return self

    def write_one(self) -> None:
        line = json.dumps(sample(self.root_pid)) + "\n"
        # One write of a whole line in append mode: a reader never sees half a row from us.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.write_one()
            except OSError:  # a full disk must not kill the training it watches
                pass
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
