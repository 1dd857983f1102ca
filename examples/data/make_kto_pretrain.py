#!/usr/bin/env python3
"""Derive the KTO and pre-training sample data from the SFT/DPO samples (synthetic, written for this project).

- ``kto_train.jsonl`` / ``kto_val.jsonl``: ``{"prompt", "completion", "label"}`` rows from ``dpo_train.jsonl`` /
  ``dpo_val.jsonl``: each pair gives its chosen answer (label true) or its rejected answer (label false),
  alternating, so the two classes are balanced and no prompt appears twice (the unpaired feedback a deployed
  assistant collects); a prompt that was a message list is kept as one.
- ``pretrain/*.md``: one catalogue page per product of ``make_samples.PRODUCTS`` (English and Chinese), the raw
  domain text continued pre-training reads (one file = one document).

Usage: python examples/data/make_kto_pretrain.py   (deterministic; writes next to this script)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_samples import PRODUCTS  # noqa: E402


def kto_rows(pairs: list[dict]) -> list[dict]:
    rows = []
    for i, pair in enumerate(pairs):
        good = i % 2 == 0
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen" if good else "rejected"], "label": good})
    return rows


def catalogue_page(p: dict) -> str:
    return (f"# {p['full_en']} / {p['full_zh']}\n\n"
            f"Bencao Hall sells {p['full_en']} ({p['spec_en']}, ¥{p['price']}), from {p['origin_en']}. "
            f"Storage: {p['storage_en']}. Preparation: {p['brew_en']}. Shelf life: {p['shelf']} months. "
            f"Traditional use: {p['use_en']}. Caution: {p['caution_en']}. This is not medical advice.\n\n"
            f"本草堂的{p['full_zh']}（{p['spec_zh']}，售价 ¥{p['price']}）产自{p['origin_zh']}。"
            f"储存：{p['storage_zh']}。食用方法：{p['brew_zh']}。保质期 {p['shelf']} 个月。"
            f"{p['use_zh']}。注意：{p['caution_zh']}。以上内容不构成医疗建议。\n")


def main() -> None:
    for name in ("train", "val"):
        pairs = [json.loads(x) for x in (HERE / f"dpo_{name}.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
        with open(HERE / f"kto_{name}.jsonl", "w", encoding="utf-8") as fh:
            for row in kto_rows(pairs):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    out = HERE / "pretrain"
    out.mkdir(exist_ok=True)
    for p in PRODUCTS:
        (out / f"{p['key']}.md").write_text(catalogue_page(p), encoding="utf-8")


if __name__ == "__main__":
    main()
