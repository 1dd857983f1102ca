"""The reward model's training forward: a sequence-classification model with one output (``num_labels=1``).

The score is the model's own pooling (transformers: the last token that is not padding), so a reward model
loaded later with ``AutoModelForSequenceClassification.from_pretrained`` scores exactly as it was trained.
Wrapping it in one module keeps distributed wrappers correct, as ``forward.CausalLMLoss`` does.
"""
from __future__ import annotations

import torch
from torch import nn


class RewardScore(nn.Module):
    """``forward(input_ids, attention_mask)`` -> (B,) scalar rewards."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.squeeze(-1)


@torch.no_grad()
def score(model: nn.Module, tokenizer, texts: list[str], batch_size: int = 8) -> list[float]:
    """Rewards of already-rendered ``texts`` (prompt and answer, as the model was trained on them)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start: start + batch_size], add_special_tokens=False, padding=True,
                            padding_side="right", return_tensors="pt").to(device)
            out += RewardScore(model)(enc["input_ids"], enc["attention_mask"]).float().tolist()
    finally:
        model.train(was_training)
    return out


def load_reward_model(path: str, device: str = "cpu"):
    """(model, tokenizer) of a reward-model run's output: a full model directory, or a LoRA adapter (with its
    trained head) on the base it names; in eval mode, padding id set for the last-token pooling."""
    import json
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..errors import ConfigError

    run = Path(path)
    adapter = run / "adapter_config.json"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(run))
        if adapter.is_file():
            from peft import PeftModel

            base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
            model = PeftModel.from_pretrained(
                AutoModelForSequenceClassification.from_pretrained(base, num_labels=1), str(run))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(run), num_labels=1)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"reward model {path!r}: cannot load it as a sequence classifier ({exc}).") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def load_scorer(path: str, device: str = "cpu"):
    """A reward-model run's output as ``score(texts) -> list[float]``.

    ``texts`` are rendered as training rendered them (chat template applied: prompt + answer + end of turn).
    This is what a GRPO ``model:PATH`` reward function can call."""
    model, tokenizer = load_reward_model(path, device)
    return lambda texts, batch_size=8: score(model, tokenizer, list(texts), batch_size)
