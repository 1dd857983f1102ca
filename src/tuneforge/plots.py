"""``training_curves.png``: loss, eval loss, learning rate and memory against step, from ``metrics.jsonl``.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works on
headless machines and inside other programs' processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .rundir import CURVES_FILE, read_metrics

MEMORY_KEYS = ("host_rss_gib", "gpu_allocated_gib", "gpu_reserved_gib", "gpu_peak_allocated_gib")


def _series(records: Iterable[dict], key: str, *, training_only: bool = False) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if training_only and "event" in r:
            continue
        value = r.get(key)
        if isinstance(value, (int, float)) and isinstance(r.get("step"), (int, float)):
            xs.append(r["step"])
            ys.append(value)
    return xs, ys


def plot_training_curves(records: list[dict], path: Path, title: str = "") -> Path:
    """Write the 4-panel figure to ``path`` and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    (ax_loss, ax_eval), (ax_lr, ax_mem) = fig.subplots(2, 2, sharex=True)
    panels = [
        (ax_loss, "loss", ["loss", "eval_loss"]),
        (ax_eval, "evaluation metrics", ["eval_token_accuracy", "eval_rewards/accuracies", "eval_rewards/margins"]),
        (ax_lr, "learning rate", ["learning_rate"]),
        (ax_mem, "memory (GiB)", list(MEMORY_KEYS)),
    ]
    for ax, name, keys in panels:
        drawn = False
        for key in keys:
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
                drawn = True
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")
    for ax in (ax_lr, ax_mem):
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(str(tmp), dpi=90)
    tmp.replace(path)  # a reader (the task console) never sees a half-written image
    return path


def plot_metrics_file(metrics_path: Path, output: Path | None = None, title: str = "") -> Path:
    return plot_training_curves(read_metrics(metrics_path), output or metrics_path.parent / CURVES_FILE, title)
