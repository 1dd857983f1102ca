"""GRPO data: prompt rows -> prompt token ids, with the rows' other columns kept for the reward functions.

A row is a ``prompt`` (string, or a list of messages), ``messages`` ending in a user turn (trailing
assistant turns are dropped), or the alpaca ``instruction``/``input``. Every other field (``answer``,
``solution``, ``tests`` ...) is handed to the reward functions. Rows are read with the same readers as SFT
(JSON/JSONL/CSV/Parquet/Arrow, directories of shards); prompts are short, so they are encoded in memory
rather than through the tokenized cache. A prompt longer than ``seq_length - max_completion_length`` tokens
keeps its last tokens (the question is at the end) and is counted as truncated.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from .formats import FORMATS, RowReport, detect_format, prompt_messages, read_rows
from .sources import data_sources, source_files
from .split import weighted
from .templates import encode_prompt, with_system_prompt

# The fields that make a row's prompt; they are not handed to the reward functions.
PROMPT_FIELDS = frozenset({"prompt", "messages", "instruction", "input", "system", "conversations"})


@dataclass
class PromptRow:
    ids: list[int]  # the prompt rendered for generation
    text: str  # the last user turn, as reward functions see the prompt
    columns: dict[str, Any]  # the row's other fields
    where: str  # file:line, for messages


@dataclass
class PromptSplit:
    rows: list[PromptRow]
    truncated: int = 0

    @property
    def lengths(self) -> list[int]:
        return [len(r.ids) for r in self.rows]


@dataclass
class PromptData:
    train: PromptSplit
    validation: PromptSplit | None
    report: RowReport = field(default_factory=RowReport)


def _prompt_kinds_fields() -> str:
    return ", ".join(sorted({k for f in FORMATS if f.kind != "preference" for k in f.any_of | f.all_of}
                            - {"output", "completion"}))


def read_prompt_rows(path: str, tokenizer, cfg, report: RowReport) -> PromptSplit:
    """Every prompt row of the files at ``path``; a row without a prompt field is refused (or skipped)."""
    budget = max(1, cfg.seq_length - cfg.max_completion_length)
    split = PromptSplit([])
    for file in source_files(path):
        for lineno, row in read_rows(file):
            where = (str(file), lineno)
            try:
                if detect_format(row, kinds=("sft", "prompt")) is None:
                    raise DataError(str(file), lineno, None, "no prompt: a GRPO row needs one of the fields "
                                    f"{_prompt_kinds_fields()}")
                msgs = with_system_prompt(prompt_messages(row, where), cfg.system_prompt)
            except DataError as exc:
                if cfg.on_bad_rows == "error":
                    raise
                report.drop(exc.why, f"{file}:{lineno}")
                continue
            ids = encode_prompt(tokenizer, msgs, chat_template=cfg.apply_chat_template)
            if len(ids) > budget:
                ids, split.truncated = ids[-budget:], split.truncated + 1
            columns = {k: v for k, v in row.items() if k not in PROMPT_FIELDS}
            split.rows.append(PromptRow(ids, msgs[-1].content, columns, f"{file}:{lineno}"))
    return split


def build_prompt_data(cfg, tokenizer) -> PromptData:
    """Training and validation prompts of ``cfg`` (``validation_data`` or a seeded ``validation_split``). A
    ``train_data`` source's ``weight`` repeats or subsamples its training rows as for SFT (``split.weighted``,
    seeded once per run); ``max_rows`` keeps its first rows."""
    report = RowReport()
    sources = data_sources(cfg.train_data)
    rows: list[tuple[int, PromptRow]] = []  # (source index, row)
    truncated = 0
    for k, source in enumerate(sources):
        part = read_prompt_rows(source.path, tokenizer, cfg, report)
        rows += [(k, r) for r in (part.rows[: source.max_rows] if source.max_rows else part.rows)]
        truncated += part.truncated
    if not rows:
        raise DataError(str(cfg.train_data), None, None, "no usable prompt row")
    validation = None
    if cfg.validation_data:
        validation = read_prompt_rows(cfg.validation_data, tokenizer, cfg, report)
    elif cfg.validation_split > 0:
        order = list(range(len(rows)))
        random.Random(cfg.seed).shuffle(order)
        held = set(order[:max(1, round(len(order) * cfg.validation_split))])
        validation = PromptSplit([r for i, (_, r) in enumerate(rows) if i in held])
        rows = [x for i, x in enumerate(rows) if i not in held]
    train = PromptSplit([], truncated)
    for k, source in enumerate(sources):
        mine = [r for s, r in rows if s == k]
        keep = weighted(np.arange(len(mine)), source.weight, random.Random(cfg.seed * 7919 + k))
        train.rows += [mine[i] for i in keep]
    return PromptData(train, validation, report)
