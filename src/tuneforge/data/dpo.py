"""DPO data: preference rows → (prompt, chosen, rejected) token ids, each sequence bounded by seq_length.

Each response is encoded as the assistant continuation of the prompt (the conversation rendered once,
tokenized once, ``last_turn_only``), so chosen and rejected share the exact prompt tokens the model
sees at generation time. A pair keeps only its trained response tokens (the end-of-turn token
included, the template's trailing newline not), which makes every response token a trained token.

Truncation (DESIGN.md §4: it must bound *both* sequences): ``seq_length`` bounds each of prompt+chosen
and prompt+rejected. An over-long pair first loses prompt tokens from the prompt's start — the
question sits at its end — down to a floor of ``PROMPT_FLOOR_FRACTION`` of seq_length (a leading BOS is
kept); then both responses are cut to the room left.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from ..config import TrainConfig
from ..errors import DataError
from .formats import Message, PreferencePair, RowReport, load_examples
from .templates import IGNORE_INDEX, Encoded, TemplateMismatch, encode_messages, with_system_prompt

# The prompt is never shortened below this fraction of seq_length, so the responses always keep at
# least the other part (a long prompt cannot silently push every response token out).
PROMPT_FLOOR_FRACTION = 0.5

DROP_NO_RESPONSE = "no response token left after truncation"
DROP_IDENTICAL = "chosen and rejected are identical"
DROP_IDENTICAL_TRUNCATED = "chosen and rejected identical after truncation"
DROP_TEMPLATE = "chat template renders the prompt and prompt+response inconsistently"


@dataclass
class EncodedPair:
    """Token ids of one preference pair; every chosen/rejected token is a trained token."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]

    @property
    def longest(self) -> int:
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))

    def sequences(self) -> tuple[Encoded, Encoded]:
        """prompt+chosen and prompt+rejected as labelled rows (the prompt untrained)."""
        masked = [IGNORE_INDEX] * len(self.prompt)
        return (Encoded(self.prompt + self.chosen, masked + self.chosen, len(self.prompt)),
                Encoded(self.prompt + self.rejected, masked + self.rejected, len(self.prompt)))


@dataclass
class PairSplit:
    pairs: list[EncodedPair]
    sources: list[str]
    truncated: int = 0


@dataclass
class DPOData:
    train: PairSplit
    validation: PairSplit | None
    report: RowReport = field(default_factory=RowReport)
    # split -> (N, 2) reference log-probs, filled once per run before training (train/dpo.py)
    reference_logps: dict = field(default_factory=dict)


def _response(tokenizer, msgs: list[Message], answer: str, chat_template: bool) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of ``answer`` as the assistant turn after ``msgs``."""
    enc = encode_messages(tokenizer, msgs + [Message("assistant", answer)], chat_template=chat_template,
                          last_turn_only=True)
    trained = [t for t, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    if not trained:
        return enc.input_ids[: enc.prompt_length], []
    if trained[0] != enc.prompt_length or trained[-1] - trained[0] + 1 != len(trained):
        raise TemplateMismatch("the response's tokens are not one contiguous run right after the prompt")
    return enc.input_ids[: enc.prompt_length], enc.input_ids[trained[0]: trained[-1] + 1]


def encode_pair(pair: PreferencePair, tokenizer, cfg: TrainConfig) -> EncodedPair:
    """Token ids of a pair (untruncated). Raises TemplateMismatch when the rendered prompt is not a
    prefix of prompt+response, or when it tokenizes differently before the two responses."""
    msgs = with_system_prompt(pair.prompt, cfg.system_prompt)
    prompt_c, chosen = _response(tokenizer, msgs, pair.chosen, cfg.apply_chat_template)
    prompt_r, rejected = _response(tokenizer, msgs, pair.rejected, cfg.apply_chat_template)
    if prompt_c != prompt_r:
        raise TemplateMismatch("the prompt tokenizes differently before the chosen and the rejected response "
                               "(tokens merge across the prompt/response boundary)")
    return EncodedPair(prompt_c, chosen, rejected)


def truncate_pair(pair: EncodedPair, seq_length: int, keep_head: int = 0,
                  prompt_floor: int | None = None) -> tuple[EncodedPair, bool]:
    """Bound both prompt+chosen and prompt+rejected by ``seq_length``; returns (pair, was_truncated).

    The prompt loses tokens after its first ``keep_head`` (a BOS) until the longer response fits or the
    prompt reaches ``prompt_floor`` tokens (default ``PROMPT_FLOOR_FRACTION`` x seq_length); the
    responses then keep their first tokens that fit.
    """
    if pair.longest <= seq_length:
        return pair, False
    prompt = pair.prompt
    if prompt_floor is None:
        prompt_floor = int(seq_length * PROMPT_FLOOR_FRACTION)
    floor = min(len(prompt), max(prompt_floor, keep_head))
    keep = min(len(prompt), max(floor, seq_length - max(len(pair.chosen), len(pair.rejected))))
    if keep < len(prompt):
        tail = keep - keep_head
        prompt = prompt[:keep_head] + (prompt[len(prompt) - tail:] if tail > 0 else [])
    room = max(seq_length - len(prompt), 0)
    return EncodedPair(list(prompt), pair.chosen[:room], pair.rejected[:room]), True


def _leading_bos(tokenizer, prompt: Sequence[int]) -> int:
    bos = getattr(tokenizer, "bos_token_id", None)
    return 1 if bos is not None and prompt and prompt[0] == bos else 0


def _tokenize(examples: list[PreferencePair], tokenizer, cfg: TrainConfig, report: RowReport) -> PairSplit:
    out = PairSplit([], [])
    for pair in examples:
        path, _, line = pair.source.rpartition(":")
        try:
            full = encode_pair(pair, tokenizer, cfg)
        except TemplateMismatch as exc:
            if cfg.on_bad_rows != "skip":
                raise DataError(path, int(line) if line.isdigit() else None, "prompt",
                                f"{exc}; set on_bad_rows: skip to drop such rows") from None
            report.drop(DROP_TEMPLATE, pair.source)
            continue
        if full.chosen == full.rejected:
            report.drop(DROP_IDENTICAL, pair.source)
            continue
        enc, truncated = truncate_pair(full, cfg.seq_length, _leading_bos(tokenizer, full.prompt))
        if not enc.chosen or not enc.rejected:
            report.drop(DROP_NO_RESPONSE, pair.source)
            continue
        if enc.chosen == enc.rejected:
            report.drop(DROP_IDENTICAL_TRUNCATED, pair.source)
            continue
        out.pairs.append(enc)
        out.sources.append(pair.source)
        out.truncated += truncated
    return out


def _split_validation(rows: list, cfg: TrainConfig) -> tuple[list, list]:
    """(train, validation) held out by ``validation_split`` with the run's seed (as for SFT)."""
    order = list(range(len(rows)))
    random.Random(cfg.seed).shuffle(order)
    n_val = max(1, round(len(rows) * cfg.validation_split))
    if n_val >= len(rows):
        raise DataError(cfg.train_data, None, None, f"validation_split={cfg.validation_split} leaves no training rows")
    held = set(order[:n_val])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def build_dpo_data(cfg: TrainConfig, tokenizer) -> DPOData:
    report = RowReport()
    collect = report if cfg.on_bad_rows == "skip" else None
    train_rows = load_examples(cfg.train_data, "dpo", collect)
    val_rows = load_examples(cfg.validation_data, "dpo", collect) if cfg.validation_data else []
    if cfg.validation_split > 0:
        train_rows, val_rows = _split_validation(train_rows, cfg)
    train = _tokenize(train_rows, tokenizer, cfg, report)
    if not train.pairs:
        raise DataError(cfg.train_data, None, None, "no trainable preference pairs left ("
                        + ", ".join(f"{k}: {v}" for k, v in report.dropped.items()) + ")")
    validation = _tokenize(val_rows, tokenizer, cfg, report) if val_rows else None
    if validation is not None and not validation.pairs:
        validation = None
    return DPOData(train, validation, report)
