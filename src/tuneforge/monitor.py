"""Throughput, memory and the metrics log (``metrics.jsonl``, one JSON object per event, append-only)."""
from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .storage import writing

GIB = 1024 ** 3
# Counts are whole numbers; they are summed as floats across micro-batches and processes.
COUNT_SUFFIXES = ("tokens", "pairs", "rows", "steps", "_params")
# What an evaluation line on the terminal shows (every value is in metrics.jsonl).
EVAL_SHOWN = ("eval_loss", "eval_token_accuracy", "eval_rewards/accuracies", "eval_rewards/margins", "eval_reward")


def host_memory() -> dict[str, float]:
    """Current and peak resident memory of this process, in GiB."""
    rss = 0.0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * resource.getpagesize() / GIB
    except OSError:  # not Linux
        pass
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kb / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)
    peak = max(peak, rss)  # the two are read at different moments; the peak can never be below the current
    return {"host_rss_gib": round(rss, 3), "host_peak_rss_gib": round(peak, 3)}


def device_memory(device: torch.device) -> dict[str, float]:
    if device.type != "cuda":
        return {}
    return {
        "gpu_allocated_gib": round(torch.cuda.memory_allocated(device) / GIB, 3),
        "gpu_reserved_gib": round(torch.cuda.memory_reserved(device) / GIB, 3),
        "gpu_peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 3),
    }


def memory(device: torch.device) -> dict[str, float]:
    return {**host_memory(), **device_memory(device)}


def is_count(key: str) -> bool:
    return key.endswith(COUNT_SUFFIXES) and "per_second" not in key


def _clean(value: Any, key: str = "") -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if is_count(key) and value.is_integer() else round(value, 6)
    return value


class MetricsLog:
    """Appends one JSON line per event and flushes it, so a crash loses at most the event in flight."""

    def __init__(self, path: Path | None):
        self.path = path
        self._fh = None
        # Called with every record once it is on disk (the experiment trackers); each must not raise.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        if path is not None:
            with writing(path):
                self._fh = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {k: _clean(v, k) for k, v in record.items()}
        record.setdefault("time", round(time.time(), 3))
        if self._fh is not None:
            with writing(self.path):
                self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._fh.flush()
        for listener in self.listeners:
            listener(record)
        return record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Throughput:
    """Real (non-pad) tokens per second of the training steps since the last read.

    The time is the steps' own (``spent``), so an evaluation, a checkpoint or the start of an epoch between
    two log lines neither lowers nor inflates the figure; without ``spent`` calls, the wall time since the
    last read is used."""

    def __init__(self) -> None:
        self.start = self.mark = time.perf_counter()
        self.tokens = 0
        self.total_tokens = 0
        self.busy = 0.0  # seconds spent in training steps since the last read

    def add(self, n: int) -> None:
        self.tokens += n
        self.total_tokens += n

    def spent(self, seconds: float) -> None:
        self.busy += seconds

    def read(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(self.busy if self.busy > 0 else now - self.mark, 1e-9)
        self.mark, self.tokens, self.busy = now, 0, 0.0
        return rate

    def overall(self) -> float:
        return self.total_tokens / max(time.perf_counter() - self.start, 1e-9)


def _format(key: str, value: float) -> str:
    return f"{key}={int(value)}" if is_count(key) else f"{key}={value:.4f}"


def eval_line(record: dict) -> str:
    """The evaluation metrics worth a glance, short enough for one terminal line."""
    shown = [k for k in EVAL_SHOWN if isinstance(record.get(k), (int, float))]
    return ", ".join(_format(k, record[k]) for k in shown)


def progress_printer(total_steps: int | None = None, bar: bool = True) -> Callable[[dict], None]:
    """A live bar on a terminal (one plain line per logged step otherwise: CI logs, files), plus a line per
    evaluation and per event. ``bar=False`` (``--no-progress``) drops the bar and the step lines only.
    ``show.start(total_steps)`` sets the bar's length once the run knows it."""
    from tqdm.auto import tqdm

    live = bar and sys.stderr.isatty()
    state: dict[str, Any] = {"total": total_steps, "bar": None}

    def progress():
        if state["bar"] is None:
            state["bar"] = tqdm(total=state["total"], desc="train", unit="step", dynamic_ncols=True, disable=not live)
        return state["bar"]

    def show(record: dict) -> None:
        if "loss" in record and bar:
            post = {"loss": f"{record['loss']:.4f}", "lr": f"{record.get('learning_rate', 0):.2e}",
                    "tok/s": f"{record.get('tokens_per_second', 0):.0f}"}
            if "reward" in record:  # GRPO: the mean reward is what a run is watched for
                post["reward"] = f"{record['reward']:.4f}"
            mem = record.get("gpu_peak_allocated_gib") or record.get("host_rss_gib")
            if mem is not None:
                post["mem"] = f"{mem:.2f}G"
            if live:
                progress().n = record.get("step", progress().n)
                progress().set_postfix(post)
                progress().refresh()
            else:
                print(f"step {record['step']}/{state['total']}: " + ", ".join(f"{k}={v}" for k, v in post.items()),
                      flush=True)
        evals = eval_line(record)
        if evals:
            progress().write(f"step {record['step']}: {evals}")
        if record.get("event"):
            progress().write(f"step {record['step']}: {record['event']}")

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    show.start = lambda total: state.update(total=total)  # type: ignore[attr-defined]
    show.close = close  # type: ignore[attr-defined]
    return show
