"""Rows of token ids → model-ready batches.

Each row's labels are shifted to next-token targets *per row* before rows are combined, so a
batch (padded or packed) never asks a row's last token to predict the next row's first token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .templates import IGNORE_INDEX, Encoded


def row_targets(labels: Sequence[int]) -> list[int]:
    return list(labels[1:]) + [IGNORE_INDEX]


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    targets: torch.Tensor
    n_rows: int

    @property
    def n_trained(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())

    @property
    def n_real_tokens(self) -> int:
        if self.attention_mask is None:
            return int(self.input_ids.numel())
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.position_ids), move(self.targets),
                     self.n_rows)

    def model_inputs(self) -> dict:
        return dict(input_ids=self.input_ids, attention_mask=self.attention_mask, position_ids=self.position_ids,
                    targets=self.targets)


def pad_batch(rows: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-pad to the longest row of this batch (never to seq_length)."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        mask[i, :n] = 1
        targets[i, :n] = torch.tensor(row_targets(r.labels))
    return Batch(ids, mask, None, targets, len(rows))


def pack_batch(rows: Sequence[Encoded]) -> Batch:
    """Concatenate rows into one sequence with per-row position ids and no padding.

    With ``attention_mask=None`` and restarting ``position_ids``, transformers builds a
    block-diagonal causal mask (sdpa/eager) or varlen boundaries (flash/flex attention), so no row
    attends to another (docs/architecture.md, "Packing"; requires use_cache=False, which the training forward sets).
    """
    ids: list[int] = []
    pos: list[int] = []
    targets: list[int] = []
    for r in rows:
        ids += r.input_ids
        pos += range(len(r.input_ids))
        targets += row_targets(r.labels)
    t = lambda x: torch.tensor([x], dtype=torch.long)  # noqa: E731
    return Batch(t(ids), None, t(pos), t(targets), len(rows))
