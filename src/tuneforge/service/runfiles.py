"""Reading a run directory: JSONL rows after a position, the log from a byte offset, and a task's summary
(progress, best metric, peak memory) computed from its files — the run directory is the source of truth."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
RESOURCES_FILE = "resources.jsonl"
LOG_FILE = "train.log"
TASK_CONFIG_FILE = "tuneforge_task.yaml"
EXIT_FILE = "task_exit.json"
FINISHED_MARKER = "tuneforge_config.yaml"  # written by training only when a run has finished
LOWER_IS_BETTER = {"eval_loss"}


def read_jsonl(path: Path, after: int = 0) -> list[dict]:
    """Complete rows of a JSONL file after the first ``after``; a half-written last line is left for later."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    rows = []
    for line in data[: end + 1].splitlines()[max(after, 0):]:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            rows.append({"unreadable_line": line.decode("utf-8", "replace")[:200]})
    return rows


@dataclass
class JsonlTail:
    """Follows a JSONL file that grows (and that a resumed run may shorten): new complete rows per ``poll``."""

    path: Path
    rows: int = 0  # rows returned so far = the position of the next row
    _offset: int = 0
    reset: bool = field(default=False, init=False)  # set when the file was shortened since the last poll

    def skip_to(self, rows: int) -> None:
        self.rows, self._offset = 0, 0
        if rows > 0:
            self.poll(limit=rows)

    def poll(self, limit: int | None = None) -> list[dict]:
        self.reset = False
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self._offset:  # rewritten shorter (a resume drops the rows after its checkpoint)
            self.rows, self._offset, self.reset = 0, 0, True
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        out: list[dict] = []
        pos = 0
        while limit is None or len(out) < limit:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            line = data[pos:nl]
            pos = nl + 1
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"unreadable_line": line.decode("utf-8", "replace")[:200]})
        self._offset += pos
        self.rows += len(out)
        return out


def read_log(path: Path, offset: int = 0, limit: int = 65536) -> dict[str, Any]:
    """Text of the log from a byte offset; the chunk ends on a whole UTF-8 character."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return {"offset": offset, "next_offset": offset, "size": 0, "text": ""}
    offset = min(max(offset, 0), size)
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(max(limit, 1))
    cut = len(chunk)
    # Do not split a multi-byte character: drop an incomplete trailing sequence (it comes with the next read).
    for back in range(1, min(4, len(chunk)) + 1):
        byte = chunk[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte & 0x80:
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
            if need > back:
                cut = len(chunk) - back
        break
    chunk = chunk[:cut]
    return {"offset": offset, "next_offset": offset + len(chunk), "size": size, "text": chunk.decode("utf-8", "replace")}


def log_error_line(path: Path) -> str | None:
    """The last 'tuneforge: error: ...' line, or the last non-empty line, of a log (a failed task's summary)."""
    text = read_log(path, max(0, _size(path) - 16384), 16384)["text"]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("tuneforge: error:") or "Error" in line.split(":")[0]:
            return line[:500]
    return lines[-1][:500] if lines else None


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@dataclass
class RunSummary:
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
            better = min if self.metric_name in LOWER_IS_BETTER else max
            self.best_metric = value if self.best_metric is None else better(self.best_metric, value)

    def add_resource(self, row: dict) -> None:
        host = row.get("host_rss_gib")
        if isinstance(host, (int, float)):
            self.peak_host_gib = max(self.peak_host_gib or 0.0, float(host))
        gpu = sum(v for k, v in row.items() if k.startswith("gpu") and k.endswith("_task_gib") and isinstance(v, (int, float)))
        if not gpu:  # the driver did not tell per process: the devices' used memory is the best bound
            gpu = sum(v for k, v in row.items() if k.startswith("gpu") and k.endswith("_used_gib") and isinstance(v, (int, float)))
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


def summarize_run(run_dir: Path, metric_name: str = "eval_loss") -> RunSummary:
    summary = RunSummary(metric_name=metric_name)
    for row in read_jsonl(Path(run_dir) / METRICS_FILE):
        summary.add_metric(row)
    for row in read_jsonl(Path(run_dir) / RESOURCES_FILE):
        summary.add_resource(row)
    return summary


def read_exit_status(run_dir: Path) -> int | None:
    try:
        return int(json.loads((Path(run_dir) / EXIT_FILE).read_text())["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / FINISHED_MARKER).is_file()
