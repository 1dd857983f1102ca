"""Reward-model data: DPO's preference pairs (data/dpo.py), plus the optional per-pair ``margin`` column.

The token ids come from the tokenized cache exactly as for DPO. A ``margin`` (a number: how much better the
chosen answer is, e.g. from a rating scale) is read here, by the file and line each pair came from, so the
cache format stays DPO's; rows without it get 0. When no row of the data has a margin, none is used.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .sources import RawLine, file_rows, parse_line
from .split import PreparedData, Split, prepare_data


def _file_margins(path: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for lineno, row in file_rows(path):
        if isinstance(row, RawLine):
            row = parse_line(path, lineno, row.text, keep_invalid=True)
        value = row.get("margin") if isinstance(row, dict) else None
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not np.isfinite(number):
            raise DataError(path, lineno, "margin", f"expected a finite number, got {value!r}")
        out[lineno] = number
    return out


def split_margins(split: Split) -> tuple[np.ndarray, bool]:
    """(margin per pair of ``split``, whether any row had one)."""
    files: dict[str, dict[int, float]] = {}
    values = np.zeros(len(split), dtype=np.float64)
    found = False
    for i in range(len(split)):
        path, _, line = split.sources[i].rpartition(":")
        if path not in files:
            files[path] = _file_margins(path)
        margin = files[path].get(int(line))
        if margin is not None:
            values[i], found = margin, True
    return values, found


def build_reward_data(cfg, tokenizer) -> PreparedData:
    """DPO's pairs; ``data.margins[split]`` holds per-pair margins when the data has a ``margin`` column."""
    data = prepare_data(cfg, tokenizer, strategy="reward")  # DPO's encoder; its own refusal messages
    margins = {}
    for name, split in (("train", data.train), ("validation", data.validation)):
        if split is not None:
            values, found = split_margins(split)
            if found:
                margins[name] = values
    if margins:  # a column present in one split only: the other split's pairs have margin 0
        for name, split in (("train", data.train), ("validation", data.validation)):
            if split is not None:
                margins.setdefault(name, np.zeros(len(split)))
    data.margins = margins  # type: ignore[attr-defined]
    return data
