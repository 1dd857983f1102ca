"""The monitoring page's charts of each training strategy's own metrics, as data: the page draws whatever this
table lists for the task's ``training_strategy`` (a new strategy adds an entry here, no JavaScript).

Each chart: an id, a title with its unit, the unit, a scale (100 turns a fraction into %), and its series as
(label, metrics.jsonl key). ``reward/*`` in a series key stands for every per-function reward the run logs.
"""
from __future__ import annotations

from typing import Any

NATS = "nats"
DIGITS = {"%": 1}  # digits a chart's values are written with, by unit (3 for any other unit)

STRATEGY_CHARTS: dict[str, list[dict[str, Any]]] = {
    "dpo": [
        {"id": "margins", "title": "DPO reward margin (nats)", "unit": NATS,
         "series": [("margin", "rewards/margins"), ("eval margin", "eval_rewards/margins")]},
        {"id": "accuracies", "title": "DPO reward accuracy (%)", "unit": "%", "scale": 100, "min0": True,
         "series": [("accuracy", "rewards/accuracies"), ("eval accuracy", "eval_rewards/accuracies")]},
        {"id": "rewards", "title": "DPO rewards, chosen and rejected (nats)", "unit": NATS,
         "series": [("chosen", "rewards/chosen"), ("rejected", "rewards/rejected"),
                    ("eval chosen", "eval_rewards/chosen"), ("eval rejected", "eval_rewards/rejected")]},
    ],
    "kto": [
        {"id": "kto-rewards", "title": "KTO rewards, desirable and undesirable (nats)", "unit": NATS,
         "series": [("desirable", "rewards/desirable"), ("undesirable", "rewards/undesirable"),
                    ("eval desirable", "eval_rewards/desirable"), ("eval undesirable", "eval_rewards/undesirable")]},
        {"id": "kto-margin", "title": "KTO reward margin (nats)", "unit": NATS,
         "series": [("margin", "rewards/margins"), ("eval margin", "eval_rewards/margins")]},
        {"id": "kto-kl", "title": "KTO KL reference estimate (nats)", "unit": NATS, "min0": True,
         "series": [("KL", "kl"), ("eval KL", "eval_kl")]},
    ],
    "reward": [
        {"id": "rm-accuracy", "title": "Reward model: pairs ranked right (%)", "unit": "%", "scale": 100, "min0": True,
         "series": [("accuracy", "accuracy"), ("eval accuracy", "eval_accuracy")]},
        {"id": "rm-margin", "title": "Reward model: chosen minus rejected score", "unit": "score",
         "series": [("margin", "margin"), ("eval margin", "eval_margin")]},
    ],
    "grpo": [
        {"id": "grpo-reward", "title": "GRPO mean reward", "unit": "reward",
         "series": [("reward", "reward"), ("eval reward (greedy)", "eval_reward"), ("reward/*", "reward/*")]},
        {"id": "grpo-spread", "title": "GRPO reward std within groups and advantage std", "unit": "reward",
         "min0": True,
         "series": [("reward std", "reward_std"), ("advantage std", "advantage_std")]},
        {"id": "grpo-kl", "title": "GRPO KL to the reference and entropy (nats)", "unit": NATS, "min0": True,
         "series": [("KL", "kl"), ("entropy", "entropy")]},
        {"id": "grpo-clip", "title": "GRPO clipped tokens (%)", "unit": "%", "scale": 100, "min0": True,
         "series": [("clipped low", "clip_ratio/low"), ("clipped high", "clip_ratio/high"),
                    ("truncated completions", "truncated_fraction")]},
        {"id": "grpo-length", "title": "GRPO completion length (tokens)", "unit": "tokens", "min0": True,
         "series": [("mean", "completion_length"), ("max", "completion_length_max")]},
        {"id": "grpo-time", "title": "GRPO time per logging window (s): rollout, scoring, update", "unit": "s",
         "min0": True, "series": [("rollout", "rollout_seconds"), ("scoring", "scoring_seconds"),
                                  ("update", "update_seconds")]},
    ],
}


# With eval_generation_steps > 0 (any strategy that generates answers): the answers' overlap with the references.
GENERATION_CHARTS: list[dict[str, Any]] = [
    {"id": "generation-bleu", "title": "Generated answers vs references: BLEU (0-100)", "unit": "BLEU", "min0": True,
     "series": [("BLEU", "eval_generation_bleu")]},
    {"id": "generation-rouge", "title": "Generated answers vs references: ROUGE-L F1 (%)", "unit": "%", "scale": 100,
     "min0": True, "series": [("ROUGE-L", "eval_generation_rouge_l")]},
]


def charts_for(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The charts of a task's config: its strategy's, and the generation charts when it generates answers."""
    generating = isinstance(config.get("eval_generation_steps"), int) and config["eval_generation_steps"] > 0
    charts = STRATEGY_CHARTS.get(config.get("training_strategy") or "sft", [])
    charts = charts + (GENERATION_CHARTS if generating else [])
    return [{**chart, "digits": DIGITS.get(chart["unit"], 3)} for chart in charts]
