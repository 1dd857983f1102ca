"""Evaluation while and after training: when, the best model, early stopping, scored answers."""
from __future__ import annotations

from dataclasses import dataclass

from .grpo import GRPO_BEST_METRICS
from .keys import config_key

# metric_for_best_model's allowed values per strategy (dpo: PREFERENCE_BEST_METRICS).
BEST_METRICS: dict[str, set[str]] = {
    "sft": {"eval_loss", "eval_token_accuracy"},
    "pretrain": {"eval_loss", "eval_token_accuracy"},
    "kto": {"eval_loss", "eval_rewards/desirable", "eval_rewards/margins"},
    "reward": {"eval_loss", "eval_accuracy", "eval_margin"},
    "grpo": GRPO_BEST_METRICS,
}
PREFERENCE_BEST_METRICS = {"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"}


@dataclass
class EvalArgs:
    """Evaluation while and after training: when, the best model, early stopping, scored answers."""

    eval_steps: int = config_key(
        50, "Evaluate every this many optimizer steps (0 = only at each epoch end).", lo=0, hi=10 ** 9)
    early_stopping_patience: int = config_key(
        0, "Stop after this many evaluations without improvement of metric_for_best_model (0 = never).",
        lo=0, hi=10 ** 6)
    metric_for_best_model: str = config_key(
        "eval_loss", "Metric that picks the best checkpoint and drives early stopping: eval_loss, eval_token_accuracy "
        "(SFT, pretrain), eval_rewards/accuracies (DPO), eval_rewards/desirable (KTO) or eval_reward / "
        "eval_reward_sampled (GRPO; eval_loss there means eval_reward).")
    eval_after_training: bool = config_key(
        False, "After the run: greedy answers to the validation set scored with exact match, BLEU, ROUGE-L and chrF "
        "(as 'tuneforge eval' does), written to output_dir/eval/validation/ next to metrics.jsonl.")
    eval_generation_steps: int = config_key(
        0, "Every this many optimizer steps and at the last one (0 = never): greedy answers (at most "
        "max_completion_length new tokens) to the first eval_generation_rows validation prompts, scored against "
        "their references; logged to metrics.jsonl as eval_generation_bleu and eval_generation_rouge_l, the "
        "answers to generations.jsonl. SFT and DPO; one process.", lo=0)
    eval_generation_rows: int = config_key(
        4, "How many validation rows eval_generation_steps answers (the first ones of the validation set).",
        lo=1, hi=10000)
