"""The training and validation rows: files, rendering, length, batching, the tokenized cache."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from .keys import config_key


@dataclass
class DataArgs:
    """The training and validation rows: files, rendering, length, batching, the tokenized cache."""

    train_data: Optional[Union[str, list[str]]] = config_key(
        None, "Training data: a file (JSON array, JSONL, CSV, Parquet), a directory of such shards or a saved Hugging "
        "Face dataset; or a list of them to mix, each a path or {path, weight, max_rows} (weight: rows taken per "
        "epoch as a multiple of the source's rows, e.g. 0.3 or 2; max_rows: only its first rows). Row formats are "
        "detected per file.")
    validation_data: Optional[str] = config_key(
        None, "Validation data file (same formats). Alternative to validation_split.")
    validation_split: float = config_key(
        0.0, "Fraction of train_data held out for validation when validation_data is not given (0 = none).",
        lo=0.0, hi=0.5)
    seq_length: int = config_key(
        1024, "Maximum tokens of one sample (SFT: system+instruction+output; DPO: each of prompt+chosen and "
        "prompt+rejected). Longer rows are truncated.", lo=8, hi=1 << 20)
    apply_chat_template: bool = config_key(
        True, "true: render rows with the tokenizer's chat template; false: plain concatenation, the data carries its "
        "own special tokens.")
    system_prompt: Optional[str] = config_key(
        None, "System message for rows that have none; replaces a chat template's built-in default system prompt.")
    packing: bool = config_key(
        False, "Concatenate the rows of a micro-batch (SFT rows; DPO chosen and rejected rows) into one sequence "
        "without padding (attention never crosses rows). Off by default: with SDPA the packed rows need a dense block "
        "mask, which measured slower on CPU than length-grouped padded batches; worth it on GPU with "
        "attn_implementation flash_attention_2 or flex_attention.")
    group_by_length: bool = config_key(
        True, "Without packing: fill each step with rows of similar length (seeded megabatches sorted by length), so "
        "little compute goes to padding.")
    on_bad_rows: Literal["error", "skip"] = config_key(
        "error", "A malformed data row stops the run before training (error) or is dropped and counted (skip).")
    data_cache_dir: Optional[str] = config_key(
        None, "Directory of the tokenized data cache (default: $TUNEFORGE_DATA_CACHE, else ~/.cache/tuneforge/data). "
        "Rows are tokenized once per data content and encoding settings, then memory-mapped by every run and process; "
        "'tuneforge cache ls|clear' manages it.")
    data_num_workers: Optional[int] = config_key(
        None, "Processes that tokenize the data when its cache entry is built (default: the CPU cores available). The "
        "result is identical for any number.", lo=1, hi=1024)
