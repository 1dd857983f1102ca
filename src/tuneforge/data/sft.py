"""SFT data: files → conversations → token ids with labels, truncated to seq_length, split for validation.

The encoding is ``encode.encode_sft`` (the one encoder); rows are tokenized once into the cache and
memory-mapped (``split.prepare_data``). This module keeps the SFT names the recipes use.
"""
from __future__ import annotations

from .split import PreparedData, prepare_data

SFTData = PreparedData


def build_sft_data(cfg, tokenizer) -> PreparedData:
    """Training (and validation) rows of ``cfg`` for SFT: ``data.train.rows[i]`` is a templates.Encoded."""
    return prepare_data(cfg, tokenizer, strategy="sft")
