"""A task's evaluations as the console shows them: each ``tuneforge eval`` result under ``RUN/eval/<name>/``
(``eval_results.json`` and ``predictions.jsonl``, written by evaluation/results.py), read for the evaluation page.
Nothing here computes a metric: the page shows what the command wrote, row by row."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..evaluation.judge import render_judge
from ..evaluation.results import PREDICTIONS_FILE, RESULTS_FILE, metric_unit

EVAL_DIR = "eval"
MAX_ROWS = 2000  # rows shown on one page (the file keeps them all)


def list_evaluations(run_dir: str | None) -> list[dict[str, Any]]:
    """Every evaluation of a run, newest first: its folder name, data, time and whether a judge was used."""
    root = Path(run_dir or "") / EVAL_DIR
    found = []
    for folder in sorted(root.iterdir()) if run_dir and root.is_dir() else []:
        results = _results(folder)
        if results is not None:
            found.append({"name": folder.name, "created": results.get("created"),
                          "data": (results.get("data") or {}).get("name"), "judged": bool(results.get("judge")),
                          "compared": "base" in (results.get("metrics") or {})})
    return sorted(found, key=lambda e: e.get("created") or "", reverse=True)


def _results(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lost(row: dict) -> bool:
    """The tuned answer did worse than the base: the judge's pairwise outcome, else its grades, else ROUGE-L."""
    judge = row.get("judge") or {}
    pair = judge.get("pairwise") or {}
    if pair.get("first") == "tuned" and pair.get("outcome") in ("win", "loss", "tie"):
        return pair["outcome"] == "loss"
    single = judge.get("single") or {}
    tuned, base = (single.get("tuned") or {}).get("score"), (single.get("base") or {}).get("score")
    if isinstance(tuned, (int, float)) and isinstance(base, (int, float)):
        return tuned < base
    t, b = (row.get("scores") or {}).get("rouge_l"), (row.get("base_scores") or {}).get("rouge_l")
    return isinstance(t, (int, float)) and isinstance(b, (int, float)) and t < b


def read_evaluation(run_dir: str, name: str) -> dict[str, Any] | None:
    """One evaluation: its metrics as table rows (with units), its judge summary, and its rows."""
    folder = Path(run_dir) / EVAL_DIR / name
    if "/" in name or name.startswith(".") or not folder.is_dir():
        return None
    results = _results(folder)
    if results is None:
        return None
    metrics = results.get("metrics") or {}
    columns = [c for c in ("tuned", "base") if c in metrics]
    names = list(dict.fromkeys(k for c in columns for k in metrics[c]))
    table = [{"name": n, "unit": metric_unit(n)[0], "cells": [metrics[c].get(n) for c in columns],
              "delta": (results.get("delta") or {}).get(n)} for n in names]
    rows = []
    try:
        with open(folder / PREDICTIONS_FILE, encoding="utf-8") as fh:
            for line in fh:
                if len(rows) >= MAX_ROWS:
                    break
                row = json.loads(line)
                rows.append({**row, "lost": _lost(row)})
    except (OSError, ValueError):
        pass
    return {"name": name, "results": results, "columns": columns, "table": table, "rows": rows,
            "judge": _judge_text(results.get("judge"))}


def _judge_text(section: Any) -> str | None:
    """The judge's summary in the words `tuneforge eval` prints (scores and win/tie/loss with their intervals)."""
    if not section:
        return None
    try:
        return render_judge(section)
    except (KeyError, TypeError, ValueError):  # a results file from another version: show it as it is
        return json.dumps(section, indent=1, ensure_ascii=False)
