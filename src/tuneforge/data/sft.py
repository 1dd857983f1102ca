"""SFT data: files → conversations → token ids with labels, truncated to seq_length, split for validation."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..config import TrainConfig
from ..errors import DataError
from .formats import Conversation, RowReport, load_examples
from .templates import IGNORE_INDEX, Encoded, TemplateMismatch, encode_messages, with_system_prompt


@dataclass
class TokenizedSplit:
    rows: list[Encoded]
    sources: list[str]
    truncated: int = 0


@dataclass
class SFTData:
    train: TokenizedSplit
    validation: TokenizedSplit | None
    report: RowReport = field(default_factory=RowReport)


def encode_conversation(conv: Conversation, tokenizer, cfg: TrainConfig) -> tuple[Encoded, bool]:
    """Token ids + labels of one conversation, truncated to ``seq_length``; returns (encoded, was_truncated)."""
    msgs = with_system_prompt(conv.messages, cfg.system_prompt)
    enc = encode_messages(tokenizer, msgs, chat_template=cfg.apply_chat_template)
    if len(enc.input_ids) <= cfg.seq_length:
        return enc, False
    n = cfg.seq_length
    return Encoded(enc.input_ids[:n], enc.labels[:n], min(enc.prompt_length, n)), True


def _tokenize(examples: list[Conversation], tokenizer, cfg: TrainConfig, report: RowReport) -> TokenizedSplit:
    out = TokenizedSplit([], [])
    skip = cfg.on_bad_rows == "skip"
    for conv in examples:
        path, _, line = conv.source.rpartition(":")
        try:
            enc, truncated = encode_conversation(conv, tokenizer, cfg)
        except TemplateMismatch as exc:
            if not skip:
                raise DataError(path, int(line), "messages", str(exc)) from None
            report.drop("chat template renders prompt and answer inconsistently", conv.source)
            continue
        # Position 0 is never a target (each position predicts the next token): count labels[1:].
        if all(x == IGNORE_INDEX for x in enc.labels[1:]):
            why = f"no trained token left after truncation to seq_length={cfg.seq_length} (the prompt fills it)"
            if not skip:
                raise DataError(path, int(line), "seq_length", why + "; raise seq_length or set on_bad_rows: skip")
            report.drop("no trained token after truncation", conv.source)
            continue
        out.rows.append(enc)
        out.sources.append(conv.source)
        out.truncated += truncated
    return out


def build_sft_data(cfg: TrainConfig, tokenizer) -> SFTData:
    report = RowReport()
    collect = report if cfg.on_bad_rows == "skip" else None
    train_rows = load_examples(cfg.train_data, "sft", collect)
    val_rows = load_examples(cfg.validation_data, "sft", collect) if cfg.validation_data else []
    if cfg.validation_split > 0:
        order = list(range(len(train_rows)))
        random.Random(cfg.seed).shuffle(order)
        n_val = max(1, round(len(train_rows) * cfg.validation_split))
        if n_val >= len(train_rows):
            raise DataError(cfg.train_data, None, None, f"validation_split={cfg.validation_split} leaves no training rows")
        held = set(order[:n_val])
        val_rows = [r for i, r in enumerate(train_rows) if i in held]
        train_rows = [r for i, r in enumerate(train_rows) if i not in held]
    train = _tokenize(train_rows, tokenizer, cfg, report)
    if not train.rows:
        raise DataError(cfg.train_data, None, None, "no trainable rows left")
    validation = _tokenize(val_rows, tokenizer, cfg, report) if val_rows else None
    if validation is not None and not validation.rows:
        validation = None
    return SFTData(train, validation, report)
