"""``tuneforge preview``: the first training rows exactly as the model sees them, trained parts marked.

The rows are ``data/preview.py``'s (the same prepared data training uses, truncation and dropped rows
included), so a wrong system prompt, a template quirk or a missing end-of-turn token is visible at a glance;
this module prints them.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..config import TrainConfig
from ..data.preview import ROW_BUILDERS
from .common import add_config_arguments, config_from_args

OPEN, CLOSE = "⟦", "⟧"
ANSI_TRAINED, ANSI_RESET = "\033[1;32m", "\033[0m"


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


def format_grpo_row(row: dict) -> list[str]:
    lines = [f"prompt ({', '.join(f'{k}={v!r}' for k, v in row['columns'].items()) or 'no other column'}):",
             row["prompt"]]
    for k, c in enumerate(row["completions"], 1):
        shown = ", ".join(f"{name}={'-' if v is None else f'{v:.3g}'}" for name, v in c["rewards"].items())
        lines.append(f"--- completion {k} ({c['tokens']} tokens{', truncated' if c['truncated'] else ''}; {shown}):")
        lines.append(c["text"])
    return lines


def format_rows(rows: list[dict], cfg: TrainConfig, color: bool) -> str:
    legend = "trained tokens in green" if color else f"trained tokens inside {OPEN}…{CLOSE}"
    lines = [f"model: {cfg.model} | strategy: {cfg.training_strategy} | seq_length: {cfg.seq_length} | {legend}"]
    for i, row in enumerate(rows):
        lines += ["", f"=== row {i + 1} ({row['source']}) ==="]
        if row.get("dropped"):
            lines.append(f"-- {row['dropped']}")
        if "completions" in row:  # GRPO: a prompt, sampled completions and their rewards
            lines += format_grpo_row(row)
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
