"""Batch generation from a loaded model: left-padded prompts in, the decoded new text of each out.

Shared by ``tuneforge generate`` (tools/generate.py), the evaluation commands (evaluation/generate.py) and
the generation hook during training (evaluation/during_training.py).
"""
from __future__ import annotations

import torch


def generate_batch(model, tokenizer, prompts: list[list[int]], device: torch.device, gen_kwargs: dict) -> list[str]:
    """Left-padded batch generation; returns the decoded new text per prompt."""
    width = max(len(p) for p in prompts)
    pad = gen_kwargs["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
