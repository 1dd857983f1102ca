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

GIB = 1024 ** 3


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


def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


class MetricsLog:
    """Appends one JSON line per event and flushes it, so a crash loses at most the event in flight."""

    def __init__(self, path: Path | None):
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._fh = path.open("a", encoding="utf-8") if path is not None else None

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {k: _clean(v) for k, v in record.items()}
        record.setdefault("time", round(time.time(), 3))
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._fh.flush()
        return record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Throughput:
    """Real (non-pad) tokens per second over the interval since the last read."""

    def __init__(self) -> None:
        self.start = self.mark = time.perf_counter()
        self.tokens = 0
        self.total_tokens = 0

    def add(self, n: int) -> None:
        self.tokens += n
        self.total_tokens += n

    def read(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.mark, 1e-9)
        self.mark, self.tokens = now, 0
        return rate

    def overall(self) -> float:
        return self.total_tokens / max(time.perf_counter() - self.start, 1e-9)


def progress_printer(total_steps: int) -> Callable[[dict], None]:
    """A live bar on a terminal; one plain line per logged record otherwise (CI logs, files)."""
    import sys

    from tqdm.auto import tqdm

    live = sys.stderr.isatty()
    bar = tqdm(total=total_steps, desc="train", unit="step", dynamic_ncols=True, disable=not live)

    def show(record: dict) -> None:
        fields = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "time"}
        if "loss" in record:
            post = {"loss": f"{record['loss']:.4f}", "lr": f"{record.get('learning_rate', 0):.2e}",
                    "tok/s": f"{record.get('tokens_per_second', 0):.0f}"}
            mem = record.get("gpu_peak_allocated_gib") or record.get("host_rss_gib")
            if mem is not None:
                post["mem"] = f"{mem:.2f}G"
            if live:
                bar.n = record.get("step", bar.n)
                bar.set_postfix(post)
                bar.refresh()
            else:
                print(f"step {record['step']}/{total_steps}: " + ", ".join(f"{k}={v}" for k, v in post.items()), flush=True)
        evals = ", ".join(f"{k}={v:.4f}" for k, v in fields.items() if k.startswith("eval_"))
        if evals:
            bar.write(f"step {record['step']}: {evals}")
        if record.get("event"):
            bar.write(f"step {record['step']}: {record['event']}")

    show.close = bar.close  # type: ignore[attr-defined]
    return show
