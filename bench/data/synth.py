"""Synthetic data for the data benchmark: chat SFT rows (~300 tokens) and DPO pairs, Chinese and English.

Deterministic (seeded); written as JSONL, streamed (constant memory at any row count).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

ZH = ("中医认为，枸杞子味甘性平，归肝肾经，有滋补肝肾、益精明目的功效。", "黄芪可以补气升阳，固表止汗，常用于气虚乏力。",
      "当归能补血活血，调经止痛，润肠通便。", "山药健脾养胃，生津益肺，补肾涩精。", "请根据症状给出调理建议，并说明注意事项。")
EN = ("Goji berries are traditionally used to nourish the liver and kidneys and to brighten the eyes.",
      "Astragalus root is said to tonify qi and strengthen the body's defences.",
      "Angelica sinensis is used to nourish and invigorate the blood.",
      "Chinese yam supports the spleen and stomach and benefits the lungs.",
      "Please give practical advice and mention any precautions.")


def _text(rng: random.Random, sentences: int) -> str:
    parts = []
    for _ in range(sentences):
        parts.append(rng.choice(ZH) if rng.random() < 0.5 else rng.choice(EN))
    return " ".join(parts)


def sft_row(rng: random.Random, i: int) -> dict:
    # ~300 tokens with the toy tokenizer: a question of 1-4 sentences, an answer of 6-16.
    return {"messages": [{"role": "user", "content": f"问题 {i}: " + _text(rng, rng.randint(1, 4))},
                         {"role": "assistant", "content": _text(rng, rng.randint(6, 16))}]}


def sft_short_row(rng: random.Random, i: int) -> dict:
    # ~50 tokens: one short sentence each way (the size of many instruction sets' rows).
    return {"messages": [{"role": "user", "content": f"Q{i}: " + rng.choice(EN if rng.random() < 0.5 else ZH)[:30]},
                         {"role": "assistant", "content": rng.choice(EN if rng.random() < 0.5 else ZH)[:40]}]}


def dpo_row(rng: random.Random, i: int) -> dict:
    return {"prompt": f"Question {i}: " + _text(rng, rng.randint(1, 4)),
            "chosen": _text(rng, rng.randint(3, 8)), "rejected": _text(rng, rng.randint(1, 6))}


def write(path: Path, kind: str, rows: int, seed: int = 0) -> Path:
    """Write ``rows`` rows of ``kind`` (sft | sft_short | dpo) to ``path`` unless it already holds exactly them."""
    marker = path.with_suffix(path.suffix + ".done")
    if path.is_file() and marker.is_file() and marker.read_text() == f"{kind} {rows} {seed}":
        return path
    rng = random.Random(seed)
    make = {"sft": sft_row, "sft_short": sft_short_row, "dpo": dpo_row}[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps(make(rng, i), ensure_ascii=False) + "\n")
    marker.write_text(f"{kind} {rows} {seed}")
    return path
