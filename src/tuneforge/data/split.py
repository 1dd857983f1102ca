"""Prepared data for training, shared by SFT and DPO: cached sources → mixed, split, memory-mapped views.

``prepare_data(cfg, tokenizer)`` opens (or builds) the tokenized cache of every ``train_data`` source
and of ``validation_data``, applies each source's row cap and weight, holds out ``validation_split``
and returns a ``PreparedData`` whose splits index the memory-mapped arrays: a split's ``rows`` (SFT)
or ``pairs`` (DPO) are built one at a time when the loop asks for them, so host memory for data does
not grow with the data set, and every process maps the same files.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError
from .build import open_or_build
from .cache import TokenStore
from .encode import EncodeSettings
from .formats import RowReport
from .sources import DataSource, data_sources  # noqa: F401 (DataSource re-exported)


class _Indexed(Sequence):
    """Items of several stores selected by (store, kept row) index arrays; built on access."""

    def __init__(self, stores: list[TokenStore], store_of: np.ndarray, index: np.ndarray, getter: str):
        self.stores, self.store_of, self.index, self.getter = stores, store_of, index, getter

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return getattr(self.stores[int(self.store_of[i])], self.getter)(int(self.index[i]))


class Split:
    """One split (train or validation): its encoded items, their sources ("file:line") and lengths.

    ``rows`` (SFT: templates.Encoded) and ``pairs`` (DPO: encode.EncodedPair) name the same items.
    """

    def __init__(self, stores: list[TokenStore], store_of: np.ndarray, examples: np.ndarray):
        rows = np.zeros(len(examples), dtype=np.int64)
        for s, store in enumerate(stores):
            mine = store_of == s
            if mine.any():
                rows[mine] = np.asarray(store.arrays["examples"][examples[mine], 2])
        self.items = _Indexed(stores, store_of, rows, "item")
        self.rows = self.pairs = self.items
        self.sources = _Indexed(stores, store_of, examples, "source")
        lengths = np.zeros(len(rows), dtype=np.int64)
        truncated = 0
        for s, store in enumerate(stores):
            mine = store_of == s
            if not mine.any():
                continue
            lengths[mine] = store.lengths()[rows[mine]]
            truncated += int(np.asarray(store.arrays["truncated"])[rows[mine]].sum())
        self.lengths: list[int] = lengths.tolist()
        self.truncated = truncated

    def __len__(self) -> int:
        return len(self.items)

    def is_truncated(self, i: int) -> bool:
        """Whether truncation to seq_length changed item ``i``."""
        store = self.items.stores[int(self.items.store_of[i])]
        return bool(store.arrays["truncated"][int(self.items.index[i])])


@dataclass
class PreparedData:
    train: Split
    validation: Split | None
    report: RowReport = field(default_factory=RowReport)
    # split -> (N, 2) reference log-probs, filled once per run before training (training/dpo.py)
    reference_logps: dict = field(default_factory=dict)


def split_indices(n: int, fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) example indices, each in file order: ``fraction`` of ``n`` held out with ``seed``."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise DataError(name, None, None, f"validation_split={fraction} leaves no training rows")
    held = np.zeros(n, dtype=bool)
    held[np.asarray(order[:n_val], dtype=np.int64)] = True
    return np.nonzero(~held)[0], np.nonzero(held)[0]


def weighted(indices: np.ndarray, weight: float, rng: random.Random) -> np.ndarray:
    """``indices`` taken ``weight`` times: whole copies for the integer part, a seeded sample for the rest."""
    whole, part = int(weight), weight - int(weight)
    extra = round(part * len(indices))
    sample = sorted(rng.sample(range(len(indices)), extra)) if extra else []
    return np.concatenate([np.tile(indices, whole), indices[np.asarray(sample, dtype=np.int64)]]).astype(np.int64)


def _kept(store: TokenStore, examples: np.ndarray) -> np.ndarray:
    return examples[np.asarray(store.arrays["examples"][examples, 2]) >= 0] if len(examples) else examples


def _merge_reports(stores: list[TokenStore]) -> RowReport:
    report = RowReport()
    for store in stores:
        saved = store.manifest["report"]
        for reason, count in saved["dropped"].items():
            report.dropped[reason] = report.dropped.get(reason, 0) + count
            report.examples.setdefault(reason, saved["examples"][reason])
    return report


def prepare_data(cfg, tokenizer, strategy: str | None = None) -> PreparedData:
    """Tokenized (cached), mixed and split data for ``strategy`` (default: the config's); bad data raises a
    DataError here."""
    settings = EncodeSettings.from_config(cfg)
    if strategy is not None:
        settings = EncodeSettings(strategy, settings.seq_length, settings.apply_chat_template, settings.system_prompt)

    def open_store(path: str) -> TokenStore:
        return open_or_build(path, tokenizer, settings, on_bad_rows=cfg.on_bad_rows,
                             cache_dir=cfg.data_cache_dir, workers=cfg.data_num_workers)

    sources = data_sources(cfg.train_data)
    stores = [open_store(s.path) for s in sources]
    train_parts, val_parts, notes = [], [], []
    for i, (src, store) in enumerate(zip(sources, stores)):
        examples = np.arange(store.manifest["examples"], dtype=np.int64)
        if src.max_rows is not None:
            examples = examples[: src.max_rows]
        held = np.zeros(0, dtype=np.int64)
        if cfg.validation_split > 0:
            examples, held = split_indices(len(examples), cfg.validation_split, cfg.seed, src.path)
        train = weighted(_kept(store, examples), src.weight, random.Random(cfg.seed * 7919 + i))
        train_parts.append((i, train))
        val_parts.append((i, _kept(store, held)))
        notes.append(f"{src.path}: {len(train)} rows" + (f" (weight {src.weight:g})" if src.weight != 1 else "")
                     + (f" (max_rows {src.max_rows})" if src.max_rows is not None else ""))
    if cfg.validation_data:
        store = open_store(cfg.validation_data)
        stores.append(store)
        examples = np.arange(store.manifest["examples"], dtype=np.int64)
        val_parts = [(len(stores) - 1, _kept(store, examples))]
    report = _merge_reports(stores)
    if len(sources) > 1:
        report.notes = ["mixed from " + ", ".join(notes)]
    train = _split(stores, train_parts)
    if not len(train):
        what = "rows" if settings.strategy == "sft" else "preference pairs"
        reasons = ", ".join(f"{k}: {v}" for k, v in report.dropped.items())
        raise DataError(str(sources[0].path), None, None,
                        f"no trainable {what} left" + (f" ({reasons})" if reasons else ""))
    validation = _split(stores, val_parts)
    return PreparedData(train, validation if len(validation) else None, report)


def _split(stores: list[TokenStore], parts: list[tuple[int, np.ndarray]]) -> Split:
    store_of = np.concatenate([np.full(len(ex), i, dtype=np.int32) for i, ex in parts]) if parts \
        else np.zeros(0, dtype=np.int32)
    examples = np.concatenate([ex for _, ex in parts]) if parts else np.zeros(0, dtype=np.int64)
    return Split(stores, store_of, examples)
