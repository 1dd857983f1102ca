"""The base model and how it is loaded and run: precision, attention kernel, memory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from .keys import config_key

BUILTIN_MODEL = "builtin:toy"


@dataclass
class ModelArgs:
    """The base model and how it is loaded and run: precision, attention kernel, memory."""

    model: str = config_key(
        BUILTIN_MODEL, "Base model: a local Hugging Face model directory, a hub id, or 'builtin:toy' (a tiny "
        "random-init toy model for trying the pipeline offline; it learns nothing useful).")
    adapter_name_or_path: Optional[str] = config_key(
        None, "Start from this LoRA adapter (e.g. an SFT run's output_dir). For DPO the adapter is also the frozen "
        "reference.")
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = config_key(
        "auto", "auto = bf16 on GPUs that support it, fp32 on CPU.")
    memory_check: bool = config_key(
        True, "Refuse to start when the memory estimate (every row seq_length tokens long) exceeds the device's total "
        "memory (one GPU's, or host RAM on a CPU), naming the ways that fit; false starts anyway.")
    gradient_checkpointing: Union[bool, Literal["auto"]] = config_key(
        False, "Recompute activations in the backward pass: less memory, ~30% slower. 'auto' = on only when the memory "
        "estimate says the run would not fit without it.")
    trust_remote_code: bool = config_key(False, "Allow model code shipped with the model repository to run.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = config_key(
        "sdpa", "Attention kernel passed to transformers.")
    allow_pickle_weights: bool = config_key(
        False, "Allow loading pickle (.bin) weights. Off: only safetensors are loaded.")
