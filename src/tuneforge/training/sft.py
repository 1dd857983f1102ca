"""The SFT recipe: batches of tokenized conversations, loss = mean cross-entropy over trained tokens."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.collate import Batch, pack_batch, pad_batch
from ..data.sft import SFTData
from ..models.forward import CROSS_ENTROPY
from .batching import validation_batches


class SFTRecipe:
    def __init__(self, data: SFTData, pad_id: int, batch_size: int, packing: bool):
        self.data, self.pad_id, self.batch_size, self.packing = data, pad_id, batch_size, packing
        self.train_lengths = data.train.lengths  # from the cache's arrays: no row is decoded to count it
        self._eval: list[Batch] | None = None

    def collate(self, rows: Sequence[int], split: str = "train") -> Batch:
        source = self.data.train if split == "train" else self.data.validation
        encoded = [source.rows[i] for i in rows]
        return pack_batch(encoded) if self.packing else pad_batch(encoded, self.pad_id)

    def eval_batches(self) -> list[Batch]:
        if self._eval is None:
            self._eval = validation_batches(self.data.validation, self.batch_size, self.collate)
        return self._eval

    def units(self, batch: Batch) -> int:
        return batch.n_trained

    def real_tokens(self, batch: Batch) -> int:
        return batch.n_real_tokens

    def loss(self, loss_module: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        loss_sum, correct = loss_module(**batch.model_inputs(), output=CROSS_ENTROPY)
        # Device values stay tensors: the loop reads them once per step, not once per micro-batch.
        return loss_sum, {"loss_sum": loss_sum.detach(), "correct": correct, "tokens": float(batch.n_trained)}

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        n = max(sums.get("tokens", 0.0), 1.0)
        return {f"{prefix}loss": sums.get("loss_sum", 0.0) / n, f"{prefix}token_accuracy": sums.get("correct", 0.0) / n,
                f"{prefix}trained_tokens": sums.get("tokens", 0.0)}


def make_sft_recipe(cfg, data: SFTData, tokenizer, loss_module: nn.Module, accelerator) -> SFTRecipe:
    return SFTRecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, cfg.packing)
