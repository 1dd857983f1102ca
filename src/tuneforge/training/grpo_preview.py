"""Preview rows for GRPO (``tuneforge preview``, the console's data preview): the first prompts as the model
sees them, a few completions sampled from the starting weights (the draws the first epoch makes for those rows:
same seeds), and each reward function's score. ``data/preview.py``'s ``ROW_BUILDERS`` calls it.

Reward code runs here for the same reason it runs in training: it is named by the config the user passed.
"""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig
from ..data.prompts import build_prompt_data
from ..models import inference
from ..models.rollout import SamplingSettings, sample_completions
from ..rewards import build_rewards, score
from .grpo import sample_seed

SHOWN_COMPLETIONS = 4  # per prompt (num_generations may be larger)


def grpo_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    """Per prompt: its rendered text and up to 4 sampled completions with their rewards (None: unscored)."""
    rows = build_prompt_data(cfg, tokenizer).train.rows[:n]
    rewards = build_rewards(cfg.reward_functions, cfg.reward_weights)
    source = inference.ModelSource(cfg.model, cfg.adapter_name_or_path, trust_remote_code=cfg.trust_remote_code,
                                   allow_pickle_weights=cfg.allow_pickle_weights)
    model = inference.load_model(source, tokenizer, dtype=torch.float32, device=inference.default_device())
    g = min(cfg.num_generations, SHOWN_COMPLETIONS)
    prompts = [r.ids for r in rows for _ in range(g)]
    seeds = [sample_seed(cfg.seed, 0, i, c) for i in range(len(rows)) for c in range(g)]
    settings = SamplingSettings(cfg.max_completion_length, cfg.temperature, cfg.top_p, cfg.top_k)
    sampled = sample_completions(model, prompts, settings, inference.stop_token_ids(model, tokenizer), seeds=seeds)
    texts = tokenizer.batch_decode(sampled.tokens, skip_special_tokens=True)
    names = sorted({k for r in rows for k in r.columns})
    columns = {k: [r.columns.get(k) for r in rows for _ in range(g)] for k in names}
    where = [r.where for r in rows for _ in range(g)]
    scores = {rw.name: score(rw, [r.text for r in rows for _ in range(g)], texts, columns, where) for rw in rewards}
    out = []
    for i, row in enumerate(rows):
        completions = []
        for j in range(i * g, (i + 1) * g):
            values = {name: (None if math.isnan(v[j]) else v[j]) for name, v in scores.items()}
            completions.append({"text": texts[j], "tokens": len(sampled.tokens[j]), "truncated": sampled.truncated[j],
                                "rewards": values})
        out.append({"source": row.where, "prompt": tokenizer.decode(row.ids), "columns": row.columns,
                    "completions": completions})
    return out
