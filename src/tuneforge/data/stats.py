"""Token lengths of a data set, counted exactly as training renders the rows (``tuneforge stats``, the console).

Lengths come from the model's own tokenizer and chat template, with the configured system prompt,
through the one encoder training uses (``encode.encode_example``), so the recommended
``seq_length`` is the one training needs, not an online token counter's guess. ``tools/stats.py`` prints it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..config import TrainConfig
from ..errors import DataError
from .encode import EncodeSettings, encode_example
from .formats import RowReport, iter_examples
from .sources import source_files
from .split import data_sources

PERCENTILES = (50, 90, 95, 99)
COVERAGE = 0.99  # the recommended seq_length keeps at least this fraction of rows whole
ROUND_TO = 64
_BIN_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MAX_BINS = 12


@dataclass
class RowLength:
    tokens: int  # full rendered length, before truncation
    answer_cut: bool  # training drops this row (e.g. truncation at seq_length leaves no trained token)


@dataclass
class LengthStats:
    rows: int
    mean: float
    percentiles: dict[str, int]  # "p50" ... "p99", "max"
    seq_length: int
    truncated: int  # rows longer than seq_length
    answer_cut: int  # rows training drops (SFT: no trained token left; DPO: no response left, identical)
    recommended_seq_length: int
    histogram: list[tuple[int, int, int]] = field(default_factory=list)  # (lo, hi inclusive, rows)


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """Nearest-rank percentile: the smallest value with at least ``p``% of the values at or below it."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def recommend_seq_length(lengths: Sequence[int], coverage: float = COVERAGE, multiple: int = ROUND_TO) -> int:
    """Smallest multiple of ``multiple`` that keeps at least ``coverage`` of the rows untruncated."""
    value = percentile(sorted(lengths), coverage * 100)
    return max(multiple, math.ceil(value / multiple) * multiple)


def histogram(lengths: Sequence[int], max_bins: int = MAX_BINS,
              split_at: int | None = None) -> list[tuple[int, int, int]]:
    """Equal-width bins starting at 0; the width is the smallest of 8, 16, 32 ... giving <= max_bins bins.

    The bin holding ``split_at`` (seq_length) is cut after it, so every bin lies wholly at or below it or wholly
    above it: the bins above add up to exactly the rows that are truncated."""
    top = max(lengths)
    width = next((w for w in _BIN_WIDTHS if (top // w) + 1 <= max_bins), _BIN_WIDTHS[-1])
    counts = [0] * (top // width + 1)
    for n in lengths:
        counts[n // width] += 1
    bins = [(i * width, (i + 1) * width - 1, c) for i, c in enumerate(counts)]
    if split_at is None:
        return bins
    out: list[tuple[int, int, int]] = []
    for lo, hi, count in bins:
        if lo <= split_at < hi:
            below = sum(1 for n in lengths if lo <= n <= split_at)
            out += [(lo, split_at, below), (split_at + 1, hi, count - below)]
        else:
            out.append((lo, hi, count))
    return out


def summarize(lengths: Sequence[RowLength], seq_length: int) -> LengthStats:
    tokens = sorted(r.tokens for r in lengths)
    pct = {f"p{p}": percentile(tokens, p) for p in PERCENTILES}
    pct["max"] = tokens[-1]
    return LengthStats(
        rows=len(tokens), mean=round(sum(tokens) / len(tokens), 1), percentiles=pct, seq_length=seq_length,
        truncated=sum(1 for n in tokens if n > seq_length), answer_cut=sum(1 for r in lengths if r.answer_cut),
        recommended_seq_length=recommend_seq_length(tokens), histogram=histogram(tokens, split_at=seq_length))


# -- measuring rows: the one encoder training uses ---------------------------------------------------------


def measure_file(path: str, tokenizer, cfg: TrainConfig, report: RowReport) -> list[RowLength]:
    """Each row's length before truncation and whether training keeps it, from ``encode.encode_example``.

    A row the chat template cannot render is an error (or skipped with ``on_bad_rows: skip``), as in
    training; rows training drops for length or content are counted (``answer_cut``), not refused.
    """
    settings = EncodeSettings.from_config(cfg)
    skip = cfg.on_bad_rows == "skip"
    out = []
    for file in source_files(path):
        for example in iter_examples(file, cfg.training_strategy, report if skip else None):
            enc = encode_example(example, tokenizer, settings)
            if enc.item is None:  # the template refused the row
                if not skip:
                    where, _, line = example.source.rpartition(":")
                    raise DataError(where, int(line), enc.field, enc.why)
                report.drop(enc.drop, example.source)
                continue
            out.append(RowLength(enc.full_length, not enc.kept))
    if not out:
        raise DataError(str(path), None, None, "no usable rows")
    return out


def collect(cfg: TrainConfig, tokenizer) -> dict:
    """Per data file (train, validation) the length statistics, plus the recommendation from train_data."""
    report = RowReport()
    splits = {"train": [src.path for src in data_sources(cfg.train_data)],
              "validation": [cfg.validation_data] if cfg.validation_data else []}
    result: dict = {"model": cfg.model, "training_strategy": cfg.training_strategy,
                    "apply_chat_template": cfg.apply_chat_template, "system_prompt": cfg.system_prompt,
                    "seq_length": cfg.seq_length, "splits": {}}
    for name, paths in splits.items():
        if paths:
            lengths = [row for path in paths for row in measure_file(path, tokenizer, cfg, report)]
            result["splits"][name] = {"path": ", ".join(paths), **asdict(summarize(lengths, cfg.seq_length))}
    result["recommended_seq_length"] = result["splits"]["train"]["recommended_seq_length"]
    result["skipped_rows"] = dict(report.dropped)
    return result
