"""The memory-aware part of the queue: may a queued task start now, and on which GPUs?

Each queued task's need is the planner's estimate of its peak memory on one device (``estimate.memory_estimate``:
GPU memory of one GPU for a GPU task, the process's peak RSS for a CPU task) plus ``SAFETY_MARGIN``. It is
compared with what the device has free, read by an injectable ``MemoryProbe`` (NVML's free memory per GPU,
psutil's available host memory), less what the tasks already running there are still expected to take (their
estimate minus the peak they have reached: a task that just started has not allocated yet). The rules:

* GPU task (``gpus`` >= 1, local executor): GPUs that no task of this service uses are taken first, without a
  memory check (what the queue always did; the run's own memory check decides). Past those, a task with an
  estimate may share a GPU whose free memory holds it; a task without one (a model whose shape the service
  cannot read) needs GPUs to itself, and no task joins it on its GPUs.
* CPU task: starts when no other task of this service runs, else when its need fits the host's available memory;
  a task without an estimate starts as before (a free slot is enough).
* The count limit stays ``--max-concurrent`` (default one per GPU, one on a CPU-only machine), so sharing a GPU
  or running CPU tasks side by side is what a larger ``--max-concurrent`` allows, memory permitting.

A task that can never fit is never blocked forever: once nothing else runs on its devices it starts. The queue
stays first in, first out: a task waiting for memory holds the tasks behind it (no small task overtakes a large
one indefinitely). ``Wait.reason`` is shown on the task (``waiting: needs 12.3 GiB, 5.1 GiB free on GPU 0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

GIB = 1024 ** 3


class MemoryProbe:
    """Free memory now, in GiB: NVML per GPU (None when NVML cannot tell), psutil for the host."""

    def gpu_free_gib(self, index: int) -> float | None:
        from .sampler import nvml

        return nvml().free_gib(index)

    def host_available_gib(self) -> float | None:
        import psutil

        return psutil.virtual_memory().available / GIB


@dataclass
class Wait:
    """Why a task cannot start now (shown on the task while it stays queued)."""

    reason: str


@dataclass
class _Device:
    holders: int = 0  # tasks of this service running here
    exclusive: bool = False  # one of them has no estimate: it keeps the device to itself
    outstanding: float = 0.0  # GiB the running tasks are still expected to take


def need_gib(estimate: float | None) -> float | None:
    """The memory a task is placed with: its estimate plus the margin every decision from an estimate keeps."""
    from ..models.memory import SAFETY_MARGIN  # here, not at import: the engine (torch) loads with the first task

    return None if estimate is None else round(estimate * (1 + SAFETY_MARGIN), 2)


def cpu_threads_per_task(cores: int, max_concurrent: int) -> int | None:
    """Threads for a CPU task when up to ``max_concurrent`` tasks may share the host (None: one task, all cores).

    Each of N side-by-side CPU tasks starting torch's default thread count (every core) oversubscribes the cores:
    the README's sweep on 2 cores took 95 s that way and 25 s with one thread each (bench/sweep/run.py), and the
    trials advanced unevenly, so they no longer met at the same evaluation step to be compared."""
    if max_concurrent <= 1:
        return None
    return max(1, cores // max_concurrent)


def _fmt(gib: float) -> str:
    return f"{gib:.1f} GiB" if gib >= 0.95 else f"{gib:.2f} GiB"


@dataclass
class Placer:
    """One queue pass's view of the devices; ``place`` either claims room for a task or says why it waits.

    ``estimate(task)`` gives a task's estimate in GiB on its device (None when unknown); ``gpus`` is the number
    of GPUs the service hands out (NVML indices 0..gpus-1)."""

    gpus: int
    probe: MemoryProbe
    estimate: Callable[[dict], float | None]
    gpu: dict[int, _Device] = field(default_factory=dict)
    host: _Device = field(default_factory=_Device)

    def __post_init__(self) -> None:
        self.gpu = {i: _Device() for i in range(self.gpus)}

    def add_running(self, task: dict) -> None:
        """Count a running task on its devices, with the memory it has still to take."""
        est = self.estimate(task)
        ids = [i for i in (task.get("gpu_ids") or []) if i in self.gpu]
        if ids:
            peak_each = (task.get("peak_gpu_gib") or 0.0) / len(ids)
            for i in ids:
                self._hold(self.gpu[i], est, peak_each)
        else:
            self._hold(self.host, est, task.get("peak_host_gib") or 0.0)

    @staticmethod
    def _hold(device: _Device, est: float | None, peak: float) -> None:
        device.holders += 1
        if est is None:
            device.exclusive = True
        else:
            device.outstanding += max(0.0, (need_gib(est) or 0.0) - peak)

    def place(self, task: dict) -> list[int] | Wait:
        """The GPU ids the task gets ([] for a CPU task), counted as running from now on, or why it waits."""
        est = self.estimate(task)
        if task.get("gpus", 0) > 0 and self.gpus > 0:
            return self._place_gpus(task, est)
        return self._place_host(task, est)

    def _place_host(self, task: dict, est: float | None) -> list[int] | Wait:
        need = need_gib(est)
        if need is not None and (self.host.holders or any(d.holders for d in self.gpu.values())):
            available = self.probe.host_available_gib()
            free = None if available is None else available - self.host.outstanding
            if free is not None and free < need:
                return Wait(f"waiting: needs {_fmt(need)}, {_fmt(max(free, 0.0))} free on the host")
        self._hold(self.host, est, 0.0)
        return []

    def _place_gpus(self, task: dict, est: float | None) -> list[int] | Wait:
        count = task["gpus"]
        idle = [i for i, d in self.gpu.items() if d.holders == 0]
        if len(idle) >= count:  # nothing of ours runs there: the run's own memory check decides
            chosen = idle[:count]
        else:
            need = need_gib(est)
            if need is None:
                return Wait(f"waiting: needs {count} GPU(s) to itself (no memory estimate for its model), "
                            f"{len(idle)} idle")
            free = self._free_gpus()
            chosen = [i for i, f in sorted(free.items(), key=lambda kv: (self.gpu[kv[0]].holders > 0, -kv[1]))
                      if f >= need][:count]
            if len(chosen) < count:
                return Wait(self._gpu_reason(need, free, count))
        for i in chosen:
            self._hold(self.gpu[i], est, 0.0)
        return chosen

    def _free_gpus(self) -> dict[int, float]:
        """GiB free on each GPU a task may share (not held by a task without an estimate; NVML answered)."""
        free: dict[int, float] = {}
        for i, device in self.gpu.items():
            if device.exclusive:
                continue
            reported = self.probe.gpu_free_gib(i)
            if reported is not None:
                free[i] = max(reported - device.outstanding, 0.0)
        return free

    def _gpu_reason(self, need: float, free: dict[int, float], count: int) -> str:
        if not free:
            return f"waiting: needs {_fmt(need)} on {count} GPU(s); the GPUs are in use, their free memory unknown"
        best = max(free, key=lambda i: free[i])
        where = f"GPU {best}" if count == 1 else f"GPU {best} (the most free of {count} needed)"
        return f"waiting: needs {_fmt(need)}, {_fmt(free[best])} free on {where}"


def task_estimate_gib(task: dict) -> float | None:
    """The planner's estimate of a task's peak memory on one of its devices, GiB (None when unknown)."""
    try:
        from ..config import from_dict
        from .estimate import memory_estimate

        config: dict[str, Any] = dict(task.get("config") or {})
        config.pop("resume_from_checkpoint", None)  # the estimate is the same; do not look for checkpoints
        result = memory_estimate(from_dict(config), int(task.get("gpus") or 0))
    except Exception:  # a config that no longer validates (data moved): the run itself will say why
        return None
    return None if result is None else float(result["total"])
