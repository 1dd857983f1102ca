"""Where results go, how they are written, and the table printed on the terminal.

Location: ``--output DIR``, else ``RUN/eval/<data name>/``. An existing default directory is never
reused: the results go to ``<data name>-2``, ``-3`` ... (the terminal says which). An ``--output``
directory that already holds ``eval_results.json`` or ``predictions.jsonl`` is refused (exit 2), so no file
is ever overwritten. Both files are written under temporary names and renamed into place only when both are
complete: an error part-way leaves nothing behind.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from ..rundir import EVAL_DIR, lower_is_better

RESULTS_FILE = "eval_results.json"
PREDICTIONS_FILE = "predictions.jsonl"
OUTPUT_FILES = (RESULTS_FILE, PREDICTIONS_FILE)

# metric -> unit shown in the table (which way it improves: ``rundir.lower_is_better``, the one rule)
METRIC_UNITS: dict[str, str] = {
    "eval_loss": "nats/token", "perplexity": "exp(loss)", "token_accuracy": "fraction", "trained_tokens": "tokens",
    "exact_match": "fraction", "bleu": "0-100", "rouge_l": "F1 0-1", "chrf": "0-100",
    "rouge_l_jieba_punct": "F 0-1", "bleu4_nltk_char": "0-100",
    "dpo_loss": "nats/pair", "rewards/accuracies": "fraction", "rewards/margins": "beta x nats",
    "rewards/chosen": "beta x nats", "rewards/rejected": "beta x nats",
    "logps/chosen": "nats", "logps/rejected": "nats", "pairs": "pairs",
    "reward": "mean per greedy answer", "reward_sampled": "mean per sampled answer",
}


def metric_unit(name: str) -> tuple[str, bool]:
    """(unit, higher is better) of a metric; a GRPO run's per-function rewards share the reward's unit."""
    unit = METRIC_UNITS["reward"] if name.startswith("reward/") else METRIC_UNITS.get(name, "")
    return unit, not lower_is_better(name)
COUNT_METRICS = {"trained_tokens", "pairs"}


def default_output(run_dir: Path, data_name: str) -> Path:
    """``run_dir/eval/<data_name>``, or the first ``<data_name>-N`` (N = 2, 3 ...) that does not exist yet."""
    root = run_dir / EVAL_DIR
    candidate, n = root / data_name, 2
    while candidate.exists():
        candidate, n = root / f"{data_name}-{n}", n + 1
    return candidate


def check_output(directory: Path) -> None:
    """Refuse a directory that is a file or already holds results (checked before any work starts)."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--output {str(directory)!r}: exists and is not a directory.")
    taken = [name for name in OUTPUT_FILES if (directory / name).exists()]
    if taken:
        raise ConfigError(f"--output {str(directory)!r} already holds {', '.join(taken)}; choose another directory "
                          "(results are never overwritten). Nothing was written.")


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: such numbers are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_results(directory: Path, results: dict[str, Any], predictions: Iterable[dict[str, Any]]) -> Path:
    """Write ``eval_results.json`` and ``predictions.jsonl`` into ``directory`` all-or-nothing."""
    check_output(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        (staging / RESULTS_FILE).write_text(json.dumps(_json_safe(results), ensure_ascii=False, indent=2) + "\n",
                                            encoding="utf-8")
        with open(staging / PREDICTIONS_FILE, "w", encoding="utf-8") as fh:
            for row in predictions:
                fh.write(json.dumps(_json_safe(row), ensure_ascii=False) + "\n")
        if not directory.exists():
            os.rename(staging, directory)
            return directory
        check_output(directory)  # again: something may have appeared while the model ran
        for name in OUTPUT_FILES:
            os.rename(staging / name, directory / name)
        return directory
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# terminal table


def _fmt(value: Any, count: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if count:
        return f"{value:,.0f}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def _better(name: str, delta: float | None) -> str:
    if delta is None or name in COUNT_METRICS:
        return ""
    if abs(delta) < 1e-12:
        return "same"
    higher = metric_unit(name)[1]
    return "tuned" if (delta > 0) == higher else "base"


def render_table(metrics: dict[str, dict[str, float]], delta: dict[str, float] | None = None) -> str:
    """A plain-text table: metric, unit, tuned [, base, delta, better]."""
    columns = list(metrics)
    names = list(dict.fromkeys(n for col in columns for n in metrics[col]))
    header = ["metric", "unit"] + columns + (["delta (tuned - base)", "better"] if delta is not None else [])
    rows = []
    for name in names:
        count = name in COUNT_METRICS
        row = [name, metric_unit(name)[0]] + [_fmt(metrics[c].get(name), count) for c in columns]
        if delta is not None:
            d = delta.get(name)
            row += [("-" if d is None else f"{d:+.4f}") if not count else "", _better(name, d)]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
