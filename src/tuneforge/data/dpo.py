"""DPO data: preference rows → (prompt, chosen, rejected) token ids, each sequence bounded by seq_length.

The encoding and its truncation rule live in ``encode`` (``encode_dpo``, the one encoder); pairs are
tokenized once into the cache and memory-mapped (``split.prepare_data``). This module keeps the DPO
names the recipes and tests use.
"""
from __future__ import annotations

from .encode import (DROP_IDENTICAL, DROP_IDENTICAL_TRUNCATED, DROP_NO_RESPONSE, DROP_TEMPLATE, EncodedPair,
                     encode_pair, truncate_pair)
from .split import PreparedData, prepare_data

# The truncation constant is read from ``encode.PROMPT_FLOOR_FRACTION`` (not re-exported: a copy here would
# not change the rule). Names kept for the recipes and tests:
__all__ = ["DROP_IDENTICAL", "DROP_IDENTICAL_TRUNCATED", "DROP_NO_RESPONSE", "DROP_TEMPLATE", "EncodedPair",
           "encode_pair", "truncate_pair", "DPOData", "build_dpo_data"]

DPOData = PreparedData


def build_dpo_data(cfg, tokenizer) -> PreparedData:
    """Training (and validation) pairs of ``cfg``: ``data.train.pairs[i]`` is an encode.EncodedPair."""
    return prepare_data(cfg, tokenizer, strategy="dpo")
