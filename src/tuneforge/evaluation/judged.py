"""``tuneforge eval``'s judged part, joined to the evaluation: ``--compare RUN_B`` (a second run's answers to
the same rows) and ``--judge URL`` (those answers judged by a model, see judging.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from .judge import Bootstrap
from .judge_client import JudgeError
from .judging import JudgeOptions, check_judge, check_rows, judge_rows

_JUDGE_FLAGS = ("judge_model", "judge_api_key_env", "judge_template", "judge_cache")


def judge_options(opts: Any) -> JudgeOptions:
    return JudgeOptions(url=opts.judge, model=opts.judge_model or "", api_key_env=opts.judge_api_key_env,
                        template=opts.judge_template, concurrency=opts.judge_concurrency, mode=opts.judge_mode,
                        cache_dir=opts.judge_cache, attempts=opts.judge_retries + 1,
                        max_tokens=opts.judge_max_tokens, bootstrap=Bootstrap())


def check_judged_options(opts: Any, plan: Any) -> None:
    """--compare and --judge* checked with the other options, before any model loads."""
    if not opts.judge:
        given = [f"--{name.replace('_', '-')}" for name in _JUDGE_FLAGS if getattr(opts, name)]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --judge URL.")
    if opts.compare:
        if opts.predictions or not opts.data:
            raise ConfigError("--compare RUN_B evaluates a second run on --data FILE; it does not apply to "
                              "--predictions.")
        if opts.compare_base:
            raise ConfigError("--compare RUN_B and --compare-base: give one (the judge compares two sets of answers).")
        if not Path(opts.compare).is_dir() and not opts.compare.startswith("builtin:"):
            raise ConfigError(f"--compare {opts.compare!r}: no such run directory.")
    if opts.judge:
        if not opts.predictions and not plan.generation:
            raise ConfigError("--judge judges generated answers: leave out --metrics, or include 'generation' in it.")
        check_judge(judge_options(opts))


def add_compared_run(outcome: Any, opts: Any, plan: Any, evaluate: Callable) -> None:
    """Evaluate RUN_B on the same file and put its answers beside RUN's (``compare_prediction``), row by row
    (matched by file line: the two runs may keep different rows, e.g. with different seq_length)."""
    other = dataclasses.replace(opts, model=opts.compare, adapter=None, compare_base=False, compare=None, judge=None)
    second = evaluate(other, plan)
    by_source = {row["source"]: row for row in second.predictions}
    for row in outcome.predictions:
        match = by_source.get(row["source"])
        if match is not None:
            row["compare_prediction"], row["compare_scores"] = match["prediction"], match["scores"]
    results = outcome.results
    results["metrics"]["compare"] = second.results["metrics"]["tuned"]
    results["compare"] = {"model": second.results["model"],
                          "rows_matched": sum("compare_prediction" in r for r in outcome.predictions)}


def compare_and_judge(outcome: Any, opts: Any, plan: Any, evaluate: Callable) -> None:
    if opts.compare:
        add_compared_run(outcome, opts, plan, evaluate)
    if not opts.judge:
        return
    rows = outcome.predictions
    if opts.predictions:
        check_rows(rows, opts.predictions)
    section = judge_rows(rows, judge_options(opts))
    sent = section["requests"]["sent"]
    if sent and section["failed_requests"] == sent and not section["requests"]["cached"]:
        last = next((v for r in rows for v in _errors(r["judge"])), "")
        raise JudgeError(f"--judge {opts.judge}: none of {sent} requests was answered after retries ({last}). "
                         "Nothing was written.")
    outcome.results["judge"] = section


def _errors(judged: dict[str, Any]):
    for entry in judged.get("single", {}).values():
        if entry.get("error"):
            yield entry["error"]
    for verdict in judged.get("pairwise", {}).get("verdicts", []):
        if verdict.get("error"):
            yield verdict["error"]
