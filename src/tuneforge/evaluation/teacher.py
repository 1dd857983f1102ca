"""Teacher-forced metrics (eval_loss, perplexity, token_accuracy) computed by training's own evaluation.

Nothing here computes a loss: the SFT recipe builds the batches and the loss terms, and
``TrainingLoop.evaluate`` sums them over the batches exactly as it does at a training evaluation, so the
numbers equal the run's logged ``eval_loss`` / ``eval_token_accuracy`` on the same data and weights.
"""
from __future__ import annotations

import math
from typing import Any

from torch import nn

from ..training.loop import TrainingLoop


class _EvaluationView:
    """The part of a ``TrainingLoop`` its ``evaluate`` reads (recipe, loss module, accelerator and the stat
    helpers), without the optimizer and schedule a loop builds for training."""

    _add_stats = staticmethod(TrainingLoop._add_stats)
    _to_host = staticmethod(TrainingLoop._to_host)
    _sum_stats = TrainingLoop._sum_stats
    _all_sum = TrainingLoop._all_sum

    def __init__(self, recipe: Any, module: nn.Module, accelerator: Any):
        self.recipe, self.loss_module, self.accelerator = recipe, module, accelerator


def training_evaluation(recipe: Any, module: nn.Module, accelerator: Any) -> dict[str, float]:
    """The metrics a training evaluation logs (``eval_``-prefixed) for ``recipe``'s eval batches.

    The one place evaluation calls into the training loop: a change of the loop's interface is one edit here.
    """
    with accelerator.autocast():  # what accelerate's prepared module does around training's forward
        return TrainingLoop.evaluate(_EvaluationView(recipe, module, accelerator))


def sft_metrics(cfg: Any, data: Any, model: Any, module: nn.Module) -> dict[str, float]:
    """eval_loss, perplexity = exp(eval_loss), token_accuracy and trained tokens on ``data.validation``,
    with the recipe training builds for ``cfg`` (its batch size and packing)."""
    from ..training.strategies import strategy_for

    recipe = strategy_for(cfg).make_recipe(cfg, data, model.tokenizer, module, model.accelerator)
    metrics = training_evaluation(recipe, module, model.accelerator)
    loss = metrics["eval_loss"]
    return {"eval_loss": loss, "perplexity": math.exp(loss) if loss < 700 else math.inf,
            "token_accuracy": metrics["eval_token_accuracy"], "trained_tokens": metrics["eval_trained_tokens"]}
