"""What is trained and how: the training strategy; full-parameter, LoRA or QLoRA."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from .keys import config_key


@dataclass
class MethodArgs:
    """What is trained and how: the training strategy; full-parameter, LoRA or QLoRA."""

    training_strategy: Literal["sft", "dpo", "kto", "pretrain", "reward", "grpo"] = config_key(
        "sft", "Training stage: 'sft' (supervised fine-tuning), 'dpo' (preference optimization), 'kto' (thumbs-up/down "
        "feedback: prompt, completion, label), 'pretrain' (continued pre-training on raw text), 'reward' (a reward "
        "model: the base with a scalar head, Bradley-Terry on preference pairs), 'grpo' (online RL: sampled "
        "completions scored by reward_functions).")
    lora_dim: int = config_key(32, "LoRA rank. 0 = full-parameter training.", lo=0, hi=4096)
    lora_alpha: Optional[float] = config_key(
        None, "LoRA scaling alpha (typically 0.5-2x lora_dim). Default: 2 x lora_dim.", lo=0.0, lo_open=True, hi=1e5)
    load_in_4bit: bool = config_key(
        False, "QLoRA: load the base model in 4-bit NF4 (double quantization) through bitsandbytes.")
    load_in_8bit: bool = config_key(False, "QLoRA: load the base model in 8-bit through bitsandbytes.")
    lora_dropout: float = config_key(0.05, "Dropout on the LoRA input.", lo=0.0, hi=0.9)
    lora_target_modules: list[str] = config_key(
        ["q_proj", "k_proj", "v_proj", "o_proj"], "Modules that get LoRA adapters (default: the 4 attention "
        "projections; 'all-linear' for every linear layer).")
    disable_dropout: Optional[bool] = config_key(
        None, "Turn every dropout (LoRA's included) off while training. Default: on for DPO and KTO, as the DPO "
        "authors and TRL do (the policy's log-probs are compared with the dropout-free reference's, so dropout would "
        "only add noise to the loss); off for SFT.")

    @property
    def is_full(self) -> bool:
        """Full-parameter training (lora_dim: 0): every weight is trained."""
        return self.lora_dim == 0

    @property
    def is_lora(self) -> bool:
        """LoRA adapters are trained (lora_dim > 0), on a 16/32-bit or a quantized base (QLoRA)."""
        return self.lora_dim > 0

    @property
    def quantized(self) -> bool:
        """The base model loads in 4 or 8 bit (QLoRA)."""
        return self.load_in_4bit or self.load_in_8bit

    @property
    def method(self) -> str:
        if self.is_full:
            return "full"
        if self.load_in_4bit:
            return "qlora-4bit"
        if self.load_in_8bit:
            return "qlora-8bit"
        return "lora"

    @property
    def resolved_lora_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_dim
