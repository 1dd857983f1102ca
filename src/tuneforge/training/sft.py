"""The SFT recipe: batches of tokenized conversations, loss = mean cross-entropy over trained tokens."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.collate import Batch, pack_batch, pad_batch
from ..data.sft import SFTData, build_sft_data
from .run import Strategy, describe_splits, register_strategy


class SFTRecipe:
    def __init__(self, data: SFTData, pad_id: int, batch_size: int, packing: bool):
        self.data, self.pad_id, self.batch_size, self.packing = data, pad_id, batch_size, packing
        self.train_lengths = [len(r.input_ids) for r in data.train.rows]
        self._eval: list[Batch] | None = None

    def _collate(self, rows) -> Batch:
        return pack_batch(rows) if self.packing else pad_batch(rows, self.pad_id)

    def collate(self, rows: Sequence[int], split: str = "train") -> Batch:
        source = self.data.train if split == "train" else self.data.validation
        return self._collate([source.rows[i] for i in rows])

    def eval_batches(self) -> list[Batch]:
        if self._eval is None:
            val = self.data.validation
            if val is None:
                self._eval = []
            else:
                order = sorted(range(len(val.rows)), key=lambda i: -len(val.rows[i].input_ids))
                self._eval = [self._collate([val.rows[i] for i in order[s: s + self.batch_size]])
                              for s in range(0, len(order), self.batch_size)]
        return self._eval

    def units(self, batch: Batch) -> int:
        return batch.n_trained

    def real_tokens(self, batch: Batch) -> int:
        return batch.n_real_tokens

    def loss(self, module: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        loss_sum, correct = module(**batch.model_inputs(), kind="ce")
        # Device values stay tensors: the loop reads them once per step, not once per micro-batch.
        return loss_sum, {"loss_sum": loss_sum.detach(), "correct": correct, "tokens": float(batch.n_trained)}

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        n = max(sums.get("tokens", 0.0), 1.0)
        return {f"{prefix}loss": sums.get("loss_sum", 0.0) / n, f"{prefix}token_accuracy": sums.get("correct", 0.0) / n,
                f"{prefix}trained_tokens": sums.get("tokens", 0.0)}


def _make_recipe(cfg, data: SFTData, tokenizer, model, module, accelerator) -> SFTRecipe:
    return SFTRecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, cfg.packing)


def _describe(data: SFTData) -> str:
    val = data.validation
    return describe_splits("rows", len(data.train.rows), data.train.truncated,
                           (len(val.rows), val.truncated) if val else None, data.report.summary())


register_strategy("sft", Strategy(build_data=build_sft_data, make_recipe=_make_recipe, describe_data=_describe))
