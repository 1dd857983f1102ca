"""The continued pre-training recipe: rows of document pieces (data/pretrain.py), every token trained.

The loss is SFT's (summed token cross-entropy over the step's trained tokens); only what a row is differs.
With ``packing: true`` a micro-batch's rows — each up to ``seq_length`` tokens of one or more documents —
are fed as one sequence whose position ids restart at every document piece and with no attention mask:
transformers then builds a block-diagonal causal mask (SDPA, eager) or variable-length boundaries
(flash_attention_2, flex_attention), so no document attends to another. Without packing each piece is a
padded row of its own. Both give the same loss (tests/integration/test_pretrain.py).
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..data.collate import Batch, pack_batch, pad_batch
from ..data.pretrain import PackedSplit, pack_split
from ..data.split import PreparedData
from .batching import validation_batches
from .sft import SFTRecipe


class PretrainRecipe(SFTRecipe):
    def __init__(self, data: PreparedData, pad_id: int, batch_size: int, seq_length: int, packing: bool):
        self.data, self.pad_id, self.batch_size, self.packing = data, pad_id, batch_size, packing
        self.train = pack_split(data.train, seq_length, packing)
        self.validation = pack_split(data.validation, seq_length, packing)
        self.train_lengths = self.train.lengths
        self._eval: list[Batch] | None = None

    def collate(self, rows: Sequence[int], split: str = "train") -> Batch:
        source: PackedSplit = self.train if split == "train" else self.validation  # type: ignore[assignment]
        pieces = [piece for r in rows for piece in source.pieces(r)]
        return pack_batch(pieces) if self.packing else pad_batch(pieces, self.pad_id)

    def eval_batches(self) -> list[Batch]:
        if self._eval is None:
            self._eval = validation_batches(self.validation, self.batch_size, self.collate)
        return self._eval


def make_pretrain_recipe(cfg, data: PreparedData, tokenizer, loss_module: nn.Module, accelerator) -> PretrainRecipe:
    return PretrainRecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, cfg.seq_length, cfg.packing)


def describe_documents(data: PreparedData) -> str:
    """The start banner's data line: documents per split and their tokens (longer ones are cut, not truncated)."""
    def part(split, name: str) -> str:
        n = len(split.rows)
        return f"{n:,} {name} document{'s' if n != 1 else ''} ({sum(split.lengths):,} tokens)"

    val = data.validation
    text = part(data.train, "training") + (", " + part(val, "validation") if val else ", no validation set")
    return text + "; documents longer than seq_length are cut into pieces, every token trained" + data.report.summary()
