"""A task's summary (progress, best metric, peak memory) for the task list, folded from its run directory's
records as they arrive — the run directory is the source of truth, read through ``tuneforge.rundir``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rundir import METRICS_FILE, RESOURCES_FILE, best_of, read_jsonl


@dataclass
class TaskSummary:
    """What the task list shows, folded from metrics.jsonl and resources.jsonl rows as they arrive."""

    metric_name: str = "eval_loss"
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    best_metric: float | None = None
    peak_host_gib: float | None = None
    peak_gpu_gib: float | None = None
    step_seconds: float | None = None  # measured time per optimizer step (progress.json): the ETA's basis
    checkpoint_step: int | None = None  # where a resume continues (set when a task stops short of the end)

    def add_metric(self, row: dict) -> None:
        if row.get("event") in ("start", "resume") and row.get("total_steps"):
            self.total_steps = int(row["total_steps"])
        if isinstance(row.get("step"), (int, float)):
            self.step = int(row["step"])
        if isinstance(row.get("epoch"), (int, float)):
            self.epoch = float(row["epoch"])
        value = row.get(self.metric_name)
        if isinstance(value, (int, float)):
            self.best_metric = best_of(self.best_metric, value, self.metric_name)

    def add_resource(self, row: dict) -> None:
        host = row.get("host_rss_gib")
        if isinstance(host, (int, float)):
            self.peak_host_gib = max(self.peak_host_gib or 0.0, float(host))
        gpu = sum(v for k, v in row.items()
                  if k.startswith("gpu") and k.endswith("_task_gib") and isinstance(v, (int, float)))
        if not gpu:  # the driver did not tell per process: the devices' used memory is the best bound
            gpu = sum(v for k, v in row.items()
                      if k.startswith("gpu") and k.endswith("_used_gib") and isinstance(v, (int, float)))
        if gpu:
            self.peak_gpu_gib = max(self.peak_gpu_gib or 0.0, round(float(gpu), 3))

    def add_live(self, live: dict | None) -> None:
        """The run's ``progress.json`` (rewritten every step): a later step than metrics.jsonl's last line."""
        if not live:
            return
        if self.step is None or live["step"] >= self.step:
            self.step = int(live["step"])
            self.epoch = live.get("epoch", self.epoch)
        if live.get("total_steps"):
            self.total_steps = int(live["total_steps"])
        if isinstance(live.get("step_seconds"), (int, float)):
            self.step_seconds = float(live["step_seconds"])

    def progress(self) -> dict | None:
        if self.step is None and self.total_steps is None:
            return None
        fraction = (self.step or 0) / self.total_steps if self.total_steps else None
        eta = (self.total_steps - (self.step or 0)) * self.step_seconds \
            if self.total_steps and self.step_seconds is not None else None
        return {"step": self.step or 0, "total_steps": self.total_steps, "epoch": self.epoch,
                "fraction": round(min(fraction, 1.0), 4) if fraction is not None else None,
                "step_seconds": self.step_seconds, "eta_s": round(max(eta, 0.0), 1) if eta is not None else None,
                **({"checkpoint_step": self.checkpoint_step} if self.checkpoint_step is not None else {})}

    def columns(self) -> dict[str, Any]:
        return {"progress": self.progress(), "best_metric": self.best_metric, "best_metric_name": self.metric_name,
                "peak_host_gib": self.peak_host_gib, "peak_gpu_gib": self.peak_gpu_gib}


def summarize_run(run_dir: Path, metric_name: str = "eval_loss") -> TaskSummary:
    """A task's summary computed from its run directory's files (the source of truth)."""
    summary = TaskSummary(metric_name=metric_name)
    for row in read_jsonl(Path(run_dir) / METRICS_FILE):
        summary.add_metric(row)
    for row in read_jsonl(Path(run_dir) / RESOURCES_FILE):
        summary.add_resource(row)
    return summary
