"""The built-in toy model: a tiny random-init Llama with a real byte-level BPE tokenizer.

It exists so the quick start, the tests and the benchmarks run offline with no download. It learns
the pipeline, not language: its name ('builtin:toy') says so. Weights are drawn from a fixed seed,
so every process that builds it gets the same model.
"""
from __future__ import annotations

from pathlib import Path

import torch

TOKENIZER_DIR = Path(__file__).parent / "toy_tokenizer"
TOY_SEED = 1234


def toy_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def toy_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    args = dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None)
    args.update(overrides)
    return LlamaConfig(**args)


def toy_model(tokenizer, dtype: torch.dtype = torch.float32, **config_overrides):
    from transformers import LlamaForCausalLM

    cfg = toy_config(len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     **config_overrides)
    # A private generator: building the toy must not disturb the caller's RNG stream.
    devices = [] if not torch.cuda.is_available() else None
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(TOY_SEED)
        model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(dtype)


def toy_reward_model(tokenizer, dtype: torch.dtype = torch.float32, **config_overrides):
    """The toy with a scalar head (LlamaForSequenceClassification, num_labels=1): the reward model's base. Its
    decoder weights are the toy's (same seed, built first); the head is drawn after them."""
    from transformers import LlamaForSequenceClassification

    cfg = toy_config(len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     num_labels=1, **config_overrides)
    devices = [] if not torch.cuda.is_available() else None
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(TOY_SEED)
        model = LlamaForSequenceClassification(cfg)
    return model.to(dtype)


def save_toy(directory: str | Path) -> Path:
    """Write the toy model and tokenizer as an ordinary Hugging Face directory (safetensors)."""
    directory = Path(directory)
    tok = toy_tokenizer()
    model = toy_model(tok)
    model.save_pretrained(str(directory), safe_serialization=True)
    tok.save_pretrained(str(directory))
    return directory
