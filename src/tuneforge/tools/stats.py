"""``tuneforge stats``: token lengths of a data set, counted exactly as training renders the rows.

The counting is ``data/stats.py`` (the model's own tokenizer and chat template, the one encoder training
uses); this module prints it: percentiles, a histogram and the recommended ``seq_length``.
"""
from __future__ import annotations

import argparse
import json

from ..data.stats import COVERAGE, ROUND_TO, collect
from .common import add_config_arguments, config_from_args


# -- presentation ------------------------------------------------------------------------------------------


def format_report(result: dict) -> str:
    lines = [f"model: {result['model']} | strategy: {result['training_strategy']} | chat template: "
             f"{'on' if result['apply_chat_template'] else 'off'} | system_prompt: "
             f"{'(template default)' if result['system_prompt'] is None else repr(result['system_prompt'])}"]
    if result["training_strategy"] == "dpo":
        lines.append("lengths are per pair: the longer of prompt+chosen and prompt+rejected")
    for name, s in result["splits"].items():
        pct = s["percentiles"]
        lines += ["", f"{name}: {s['path']} ({s['rows']} rows)",
                  f"  tokens per row: mean {s['mean']:g} | p50 {pct['p50']} | p90 {pct['p90']} | p95 {pct['p95']} | "
                  f"p99 {pct['p99']} | max {pct['max']}"]
        peak = max(c for _, _, c in s["histogram"])
        label_width = len(str(s["histogram"][-1][1]))
        for lo, hi, count in s["histogram"]:
            bar = "█" * (round(40 * count / peak) if count else 0)
            mark = "  <- seq_length" if lo <= s["seq_length"] <= hi else ""
            lines.append(f"  {lo:>{label_width}}-{hi:<{label_width}} | {bar} {count}{mark}")
        share = 100 * s["truncated"] / s["rows"]
        lines.append(f"  seq_length={s['seq_length']}: {s['truncated']} rows ({share:.1f}%) would be truncated")
        if s["answer_cut"]:
            lines.append(f"  {s['answer_cut']} rows would not be trained (no trained token left after truncation, or a "
                         "DPO pair without two distinct responses): training drops them, and refuses SFT rows "
                         "without a trained token unless on_bad_rows: skip")
    rec = result["recommended_seq_length"]
    lines += ["", f"recommended seq_length: {rec} (the smallest multiple of {ROUND_TO} that keeps at least "
              f"{COVERAGE:.0%} of the training rows whole)"]
    if result["skipped_rows"]:
        lines.append("skipped rows: " + ", ".join(f"{k}: {v}" for k, v in result["skipped_rows"].items()))
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    from ..models.load import load_tokenizer

    cfg = config_from_args(args)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    result = collect(cfg, tokenizer)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_report(result))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "stats", help="token lengths of the data as training renders them; recommends seq_length",
        description="Count each row's tokens with the model's tokenizer and chat template exactly as training "
                    "renders it (SFT: system + conversation; DPO: the longer of prompt+chosen and "
                    "prompt+rejected); print percentiles, a histogram, the rows seq_length would truncate and a "
                    "recommended seq_length.")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(func=_cmd)
