"""``tuneforge preview``: the first training rows exactly as the model sees them, trained parts marked.

The rows come from the same prepared data training uses (the one encoder, the tokenized cache, the
validation split), so the text shown is the decoded token ids training trains on — truncation and
dropped rows included — and a wrong system prompt, a template quirk or a missing end-of-turn token is
visible at a glance.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

from ..config import TrainConfig
from ..data.encode import DROP_NO_TRAINED, EncodeSettings, Encoding, encode_example
from ..data.formats import RowReport, iter_examples
from ..data.sources import source_files
from ..data.split import data_sources, prepare_data
from ..data.templates import IGNORE_INDEX, Encoded
from .common import add_config_arguments, config_from_args

OPEN, CLOSE = "⟦", "⟧"
ANSI_TRAINED, ANSI_RESET = "\033[1;32m", "\033[0m"


@dataclass
class RenderedRow:
    text: str  # the decoded token ids
    trained_spans: list[tuple[int, int]]  # [start, end) character spans of ``text`` whose tokens are trained
    tokens: int
    trained_tokens: int
    truncated: bool

    @property
    def trained_text(self) -> list[str]:
        return [self.text[s:e] for s, e in self.trained_spans]


def trained_runs(labels: list[int]) -> list[tuple[int, int]]:
    """``[start, end)`` token index runs whose labels are trained."""
    runs, start = [], None
    for i, label in enumerate(labels + [IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def render(tokenizer, enc: Encoded, truncated: bool) -> RenderedRow:
    """Decode ``enc`` and map its trained token runs to character spans of the decoded text.

    Character positions come from decoding prefixes of the ids, so they index the very string that
    decoding all ids gives (tokenizers that merge or strip spaces stay consistent).
    """
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    text = decode(enc.input_ids)
    spans = [(min(len(decode(enc.input_ids[:s])), len(text)), min(len(decode(enc.input_ids[:e])), len(text)))
             for s, e in trained_runs(list(enc.labels))]
    return RenderedRow(text, spans, len(enc.input_ids), enc.n_trained, truncated)


def _first_rows(cfg: TrainConfig, tokenizer, n: int) -> list[tuple[str, Encoding]]:
    """The first ``n`` rows of train_data through the one encoder, with what training does with each.

    With a validation split or mixed sources the training rows are only known after the split, so they
    come from the prepared data (the same cache training maps); otherwise the file is streamed and only
    its first rows are encoded, however large it is.
    """
    settings = EncodeSettings.from_config(cfg)
    sources = data_sources(cfg.train_data)
    if cfg.validation_split > 0 or len(sources) > 1:
        train = prepare_data(cfg, tokenizer).train
        return [(train.sources[i], Encoding(train.items[i], train.is_truncated(i))) for i in range(min(n, len(train)))]
    report = RowReport() if cfg.on_bad_rows == "skip" else None
    out = []
    for file in source_files(sources[0].path):
        for example in iter_examples(file, cfg.training_strategy, report):
            out.append((example.source, encode_example(example, tokenizer, settings)))
            if len(out) == n:
                return out
    return out


def _fate(enc: Encoding) -> str | None:
    if enc.kept:
        return None
    if enc.drop == DROP_NO_TRAINED:
        return "NO trained token left: training refuses this row (raise seq_length)"
    if enc.refused:
        return f"training refuses this row ({enc.drop}; with on_bad_rows: skip it is dropped)"
    return f"training drops this row ({enc.drop})"


def _refused(source: str, enc: Encoding) -> dict:
    return {"source": source, "dropped": _fate(enc), "why": enc.why}


def _sft_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:  # the chat template refused the row
            rows.append(_refused(source, enc))
            continue
        rows.append({"source": source, "dropped": _fate(enc), **_row_json(render(tokenizer, enc.item, enc.truncated))})
    return rows


def _dpo_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    """Prompt+chosen and prompt+rejected of each pair, as the DPO loss sees them (the prompt untrained)."""
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:
            rows.append(_refused(source, enc))
            continue
        chosen, rejected = enc.item.sequences()
        rows.append({"source": source, "dropped": _fate(enc), "chosen": _row_json(render(tokenizer, chosen, enc.truncated)),
                     "rejected": _row_json(render(tokenizer, rejected, enc.truncated))})
    return rows


def _kto_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    """Prompt+completion of each KTO row, one per class it trains (a preference pair gives one of each)."""
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:
            rows.append(_refused(source, enc))
            continue
        for label, seq, side in zip(("desirable", "undesirable"), enc.item.sequences(), (enc.item.chosen, enc.item.rejected)):
            if side:
                rows.append({"source": f"{source}, {label}", "dropped": _fate(enc),
                             **_row_json(render(tokenizer, seq, enc.truncated))})
    return rows


# pretrain: a whole document, every token trained (training cuts documents longer than seq_length into pieces)
ROW_BUILDERS: dict[str, Callable[[TrainConfig, object, int], list[dict]]] = {
    "sft": _sft_rows, "dpo": _dpo_rows, "kto": _kto_rows, "pretrain": _sft_rows, "reward": _dpo_rows,
    "grpo": lambda cfg, tokenizer, n: _grpo_preview().grpo_rows(cfg, tokenizer, n)}


def _grpo_preview():
    from . import grpo_preview  # loads a model and samples: imported only for GRPO configs

    return grpo_preview


def _row_json(row: RenderedRow) -> dict:
    data = asdict(row)
    data["trained_spans"] = [list(s) for s in row.trained_spans]
    data["trained_text"] = row.trained_text
    return data


def mark(text: str, spans: list[list[int]] | list[tuple[int, int]], color: bool) -> str:
    """``text`` with each trained span wrapped in ANSI colour (terminal) or ⟦…⟧ (files, pipes)."""
    opening, closing = (ANSI_TRAINED, ANSI_RESET) if color else (OPEN, CLOSE)
    out, pos = [], 0
    for s, e in spans:
        out += [text[pos:s], opening, text[s:e], closing]
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _format_one(title: str, row: dict, color: bool) -> list[str]:
    head = (f"{title}: {row['tokens']} tokens, {row['trained_tokens']} trained"
            + (" (truncated at seq_length)" if row["truncated"] else ""))
    return [head, mark(row["text"], row["trained_spans"], color)]


def format_rows(rows: list[dict], cfg: TrainConfig, color: bool) -> str:
    legend = "trained tokens in green" if color else f"trained tokens inside {OPEN}…{CLOSE}"
    lines = [f"model: {cfg.model} | strategy: {cfg.training_strategy} | seq_length: {cfg.seq_length} | {legend}"]
    for i, row in enumerate(rows):
        lines += ["", f"=== row {i + 1} ({row['source']}) ==="]
        if row.get("dropped"):
            lines.append(f"-- {row['dropped']}")
        if "completions" in row:  # GRPO: a prompt, sampled completions and their rewards
            lines += _grpo_preview().format_grpo_row(row)
        elif "text" in row:
            lines += _format_one("tokens", row, color)
        elif "chosen" in row:
            for side in ("chosen", "rejected"):
                lines += _format_one(f"prompt + {side}", row[side], color)
        else:
            lines.append(row["why"])
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    from ..models.load import load_tokenizer

    cfg = config_from_args(args)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    rows = ROW_BUILDERS[cfg.training_strategy](cfg, tokenizer, args.n)
    if args.json:
        print(json.dumps({"model": cfg.model, "training_strategy": cfg.training_strategy, "seq_length": cfg.seq_length,
                          "rows": rows}, ensure_ascii=False, indent=2))
        return 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(format_rows(rows, cfg, color))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "preview", help="show the first training rows as the model sees them, trained tokens marked",
        description="Render the first N training rows exactly as training tokenizes them (chat template, system "
                    "prompt, truncation at seq_length) and mark the tokens the loss is computed on.")
    add_config_arguments(p)
    p.add_argument("--n", type=int, default=3, help="rows to show (default 3)")
    p.add_argument("--json", action="store_true", help="JSON: per row the rendered text and its trained spans")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help=f"mark trained text with colour (auto: on a terminal) or with {OPEN}…{CLOSE}")
    p.set_defaults(func=_cmd)
