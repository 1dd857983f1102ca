"""Which way a metric improves: the one rule for the best checkpoint, the task list's best value, a sweep's
objective and the evaluation table.

Metrics are named as ``metrics.jsonl`` records them (``eval_loss``, ``eval_rewards/accuracies``) or as
``tuneforge eval`` reports them (``perplexity``, ``rewards/accuracies``): the ``eval_`` prefix does not change
the direction. Every metric not listed here is better when higher (accuracies, margins, rewards, BLEU ...).
"""
from __future__ import annotations

LOWER_IS_BETTER = frozenset({"loss", "eval_loss", "perplexity", "dpo_loss", "rewards/rejected", "logps/rejected"})


def lower_is_better(metric: str) -> bool:
    """True for losses and the like (``eval_loss``, ``perplexity``), False for accuracies, rewards, scores."""
    return metric in LOWER_IS_BETTER or metric.removeprefix("eval_") in LOWER_IS_BETTER


def improves(value: float, best: float | None, metric: str) -> bool:
    """True when ``value`` beats ``best`` (strictly; any value beats no best yet)."""
    if best is None:
        return True
    return value < best if lower_is_better(metric) else value > best


def best_of(best: float | None, value: float, metric: str) -> float:
    """The better of ``best`` (None: none yet) and ``value`` for ``metric``."""
    return value if improves(value, best, metric) else best  # type: ignore[return-value]
