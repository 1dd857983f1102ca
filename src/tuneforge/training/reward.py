"""The reward-model recipe: preference pairs → one forward over [chosen rows; rejected rows] → Bradley–Terry.

The data are DPO's (same rows, formats, truncation: data/dpo.py); a row is the whole sequence prompt +
response, scored by the sequence-classification model (models/reward.py). No reference model. The loss is
averaged over pairs (the loop divides the summed loss by the step's pairs). Metrics: ``loss``, ``accuracy``
(share of pairs whose chosen reward is strictly higher) and ``margin`` (mean chosen − rejected reward), with
``eval_`` versions — as TRL's RewardTrainer names them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.dpo import DPOData
from ..reward_losses import bradley_terry_loss
from .dpo import PairBatch, collate_pairs
from .batching import validation_batches


class RewardRecipe:
    def __init__(self, data: DPOData, pad_id: int, batch_size: int, center_coefficient: float | None = None):
        self.data, self.pad_id, self.batch_size = data, pad_id, batch_size
        self.center_coefficient = center_coefficient
        self.train_lengths = data.train.lengths
        self._eval: list[PairBatch] | None = None

    def collate(self, rows: Sequence[int], split: str = "train") -> PairBatch:
        source = self.data.train if split == "train" else self.data.validation
        margins = getattr(self.data, "margins", {}).get(split)
        reference = None if margins is None else torch.as_tensor(margins[list(rows)], dtype=torch.float32)[:, None]
        # the (B, 1) margins ride in the batch's per-pair slot (PairBatch.reference), moved to the device with it
        return collate_pairs([source.pairs[i] for i in rows], rows, self.pad_id, reference)

    def eval_batches(self) -> list[PairBatch]:
        if self._eval is None:
            self._eval = validation_batches(self.data.validation, self.batch_size, self.collate)
        return self._eval

    def units(self, batch: PairBatch) -> int:
        return batch.n_pairs

    def real_tokens(self, batch: PairBatch) -> int:
        return batch.sequences.n_real_tokens

    def loss(self, loss_module: nn.Module, batch: PairBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        seqs, n = batch.sequences, batch.n_pairs
        rewards = loss_module(seqs.input_ids, seqs.attention_mask)
        chosen, rejected = rewards[:n], rewards[n:]
        margin = None if batch.reference is None else batch.reference[:, 0].to(rewards.dtype)
        losses = bradley_terry_loss(chosen, rejected, margin, self.center_coefficient)
        diff = (chosen - rejected).detach()
        stats = {"loss_sum": losses.sum().detach(), "pairs": float(n), "accuracy": (diff > 0).float().sum(),
                 "margin": diff.sum(), "rewards_chosen": chosen.detach().sum(),
                 "rewards_rejected": rejected.detach().sum()}
        return losses.sum(), stats

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        n = max(sums.get("pairs", 0.0), 1.0)
        return {f"{prefix}loss": sums.get("loss_sum", 0.0) / n, f"{prefix}accuracy": sums.get("accuracy", 0.0) / n,
                f"{prefix}margin": sums.get("margin", 0.0) / n,
                f"{prefix}chosen_reward": sums.get("rewards_chosen", 0.0) / n,
                f"{prefix}rejected_reward": sums.get("rewards_rejected", 0.0) / n,
                f"{prefix}pairs": sums.get("pairs", 0.0)}


def make_reward_recipe(cfg, data: DPOData, tokenizer, loss_module: nn.Module, accelerator) -> RewardRecipe:
    return RewardRecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, cfg.reward_center_coefficient)
