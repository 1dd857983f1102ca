"""GRPO's terms of the memory estimate: G sequences of prompt + completion per prompt row, the rollouts' key/value
cache when it exceeds the update's activations, and the frozen reference copy (models/memory.py)."""
from __future__ import annotations

import pytest

from tuneforge.config import TrainConfig
from tuneforge.models.memory import ModelShape, estimate

SHAPE = ModelShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=100, tied=False)


def _cfg(**keys) -> TrainConfig:
    base = {"train_data": "x.jsonl", "per_device_train_batch_size": 2, "seq_length": 64, "lora_dropout": 0.0,
            "lora_dim": 0, "training_strategy": "grpo", "num_generations": 4, "max_completion_length": 8,
            "reward_functions": ["accuracy"]}
    return TrainConfig(**{**base, **keys})


def test_a_prompt_row_is_g_prompt_plus_completion_sequences():
    sft = estimate(TrainConfig(train_data="x.jsonl", per_device_train_batch_size=2, seq_length=64, lora_dim=0,
                               lora_dropout=0.0), SHAPE, "cpu", longest_row=16)  # 2 rows x 16 tokens
    grpo = estimate(_cfg(), SHAPE, "cpu", longest_row=8)  # 2 prompts x 4 x (8 + 8) tokens = 4x the tokens
    assert grpo.activations == pytest.approx(4 * sft.activations)


def test_the_update_not_the_rollout_cache_is_the_peak():
    """The rollouts hold k and v per layer for the same sequences the update then trains on; the update keeps
    several hidden-sized activations per layer and token, so it is the peak (the cache is a max() term)."""
    for keys in ({}, {"lora_dim": 8, "gradient_checkpointing": True}):
        est = estimate(_cfg(**keys), SHAPE, "cpu", longest_row=8)
        cache = 2 * 2 * 32 * (2 * 4) * 16 * 4  # k+v, 2 layers, kv width 32, 8 sequences x 16 tokens, fp32
        assert est.activations > cache


def test_the_reference_copy_doubles_the_weights_only_when_used():
    plain = estimate(_cfg(), SHAPE, "cpu", longest_row=8)
    with_kl = estimate(_cfg(grpo_beta=0.04), SHAPE, "cpu", longest_row=8)
    lora_kl = estimate(_cfg(grpo_beta=0.04, lora_dim=8), SHAPE, "cpu", longest_row=8)
    lora = estimate(_cfg(lora_dim=8), SHAPE, "cpu", longest_row=8)
    assert with_kl.weights == pytest.approx(2 * plain.weights)
    assert lora_kl.weights == pytest.approx(lora.weights)  # LoRA: the adapter switched off, no copy
