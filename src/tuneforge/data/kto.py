"""KTO data: feedback rows (prompt, completion, label) and preference pairs → unpaired rows with KL partners.

The cache holds each row as an ``EncodedPair`` (``encode.encode_kto``): a desirable completion on the chosen
side, an undesirable one on the rejected side, the other side empty; a preference pair keeps both sides.
Here every non-empty side becomes one training row — a pair is *unpaired* into one desirable and one
undesirable row. Rows are ordered desirable first, then undesirable (in file order within each), so that
neighbours rarely share a prompt.

The KL reference point needs mismatched (prompt, completion) pairs: row ``r``'s KL completion is row
``r - 1``'s completion (row 0 takes the last row's), TRL's rotation by one applied over the whole split in this
fixed order rather than within each batch — so the partner of a row never depends on the batch it lands in
and the reference log-probs of both sequences can be precomputed once. A KTO row is then itself an
``EncodedPair(prompt, completion, kl_completion)``: the DPO reference machinery scores its two sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..kto_losses import ratio_advice
from .encode import EncodedPair
from .formats import RowReport
from .sources import data_sources
from .split import Split, prepare_data


class KTOSplit(Sequence):
    """One split's unpaired rows; ``pairs[r]`` is EncodedPair(prompt, completion, kl_completion)."""

    def __init__(self, split: Split, seq_length: int):
        self.split, self.seq_length = split, seq_length
        seg = _segments(split)  # (items, 3): prompt, chosen, rejected lengths
        good = np.nonzero(seg[:, 1] > 0)[0]
        bad = np.nonzero(seg[:, 2] > 0)[0]
        self.item = np.concatenate([good, bad]).astype(np.int64)
        self.desirable = np.concatenate([np.ones(len(good), bool), np.zeros(len(bad), bool)])
        completion = np.where(self.desirable, seg[self.item, 1], seg[self.item, 2])
        prompt = seg[self.item, 0]
        kl = np.minimum(np.roll(completion, 1), seq_length - prompt)
        self.lengths: list[int] = (prompt + np.maximum(completion, kl)).tolist()
        self.pairs = self
        self.rows = self

    def __len__(self) -> int:
        return len(self.item)

    def __getitem__(self, r):
        if isinstance(r, slice):
            return [self[j] for j in range(*r.indices(len(self)))]
        prompt, completion = self._side(r)
        _, partner = self._side((r - 1) % len(self))
        return EncodedPair(prompt, completion, partner[: max(self.seq_length - len(prompt), 0)])

    def _side(self, r: int) -> tuple[list[int], list[int]]:
        pair = self.split.items[int(self.item[r])]
        return pair.prompt, (pair.chosen if self.desirable[r] else pair.rejected)

    @property
    def n_desirable(self) -> int:
        return int(self.desirable.sum())


def _segments(split: Split) -> np.ndarray:
    items = split.items
    out = np.zeros((len(items), 3), dtype=np.int64)
    for s, store in enumerate(items.stores):
        mine = np.asarray(items.store_of) == s
        if mine.any():
            out[mine] = np.asarray(store.arrays["seg_len"], dtype=np.int64)[np.asarray(items.index)[mine]]
    return out


@dataclass
class KTOData:
    train: KTOSplit
    validation: KTOSplit | None
    report: RowReport = field(default_factory=RowReport)
    # split -> (N, 2) reference log-probs [completion, KL completion], filled once per run (training/dpo.py)
    reference_logps: dict = field(default_factory=dict)


def build_kto_data(cfg, tokenizer) -> KTOData:
    """Unpaired training (and validation) rows of ``cfg``; a note with numbers when the desirable:undesirable
    balance is outside the KTO paper's range for the configured weights."""
    data = prepare_data(cfg, tokenizer, strategy="kto")
    train = KTOSplit(data.train, cfg.seq_length)
    if len(train) < 2:
        raise DataError(str(data_sources(cfg.train_data)[0].path), None, None,
                        f"{len(train)} training row: KTO needs at least 2 (the KL term pairs each prompt with another "
                        "row's completion)")
    validation = KTOSplit(data.validation, cfg.seq_length) if data.validation is not None else None
    advice = ratio_advice(train.n_desirable, len(train) - train.n_desirable, cfg.kto_desirable_weight,
                          cfg.kto_undesirable_weight)
    if advice:
        data.report.notes.append(advice)
    return KTOData(train, validation, data.report)
