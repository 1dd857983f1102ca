"""The new-task form's fields, built from the config's own declarations (``tuneforge.config.FIELDS``).

The guide's hyperparameters come first, by their exact key names, each with a one-line piece of advice;
every other key is an "advanced" field whose help is the config's docstring, so the form can never drift
from what ``tuneforge train`` accepts.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Literal, Union

from ..config import FIELDS, TrainConfig

# Every training_strategy the config accepts (its Literal), with the label and the one-line advice the form shows.
STRATEGY_LABELS: dict[str, tuple[str, str]] = {
    "sft": ("SFT", "question/answer rows teach the model a domain"),
    "dpo": ("DPO", "(prompt, chosen, rejected) rows teach a preference, usually after SFT"),
    "kto": ("KTO", "(prompt, completion, label) thumbs-up/down rows, no pairs needed"),
    "grpo": ("GRPO", "prompts; sampled answers scored by reward_functions (online RL)"),
    "reward": ("Reward model", "preference pairs train a scorer (for GRPO or ranking)"),
    "pretrain": ("Pre-training", "raw domain text, every token trained"),
}


def strategies() -> list[dict[str, str]]:
    """The strategies in the config's own order: value, label, advice (unknown ones shown by their name)."""
    values = typing.get_args(typing.get_type_hints(TrainConfig)["training_strategy"])
    return [{"value": v, "label": STRATEGY_LABELS.get(v, (v, ""))[0], "advice": STRATEGY_LABELS.get(v, (v, ""))[1]}
            for v in values]


# The guide's keys, in the order a user decides them, with advice in one line each.
GUIDE_ADVICE: dict[str, str] = {
    "learning_rate": "AdamW step size. LoRA/QLoRA: about 1e-4 to 2e-4; full-parameter: about 1e-5. Lower it if the loss jumps.",
    "num_train_epochs": "Passes over the data: 2 to 10. Stop when the eval loss stops falling.",
    "per_device_train_batch_size": "Rows per device per step: the largest that fits memory (watch the GPU memory chart), or 'auto'.",
    "gradient_accumulation_steps": "Effective batch = batch size × this × devices. Raise it when memory caps the batch size.",
    "seq_length": "Tokens per sample; longer rows are truncated. Take the data set's recommended value.",
    "lora_dim": "LoRA rank, default 32; 0 means full-parameter training.",
    "lora_alpha": "LoRA scaling, usually ½ to 2 × lora_dim; higher = stronger adapter (small data). Empty = 2 × lora_dim.",
    "dpo_beta": "DPO β, default 0.1 (typical 0.1 to 0.5): higher keeps the model closer to the reference. DPO only.",
    "load_in_4bit": "QLoRA: load the base model in 4 bit. Least memory, somewhat slower than LoRA.",
    "load_in_8bit": "QLoRA: load the base model in 8 bit.",
    "apply_chat_template": "On: wrap rows in the model's chat template. Off: the data carries its own special tokens.",
    "system_prompt": "System message added to every row that has none (works with the chat template on).",
}
# Chosen through their own controls at the top of the form (strategy, method, model, data).
TOP_KEYS = ("training_strategy", "model", "train_data", "validation_data", "validation_split")
# Decided by the task service, not by the user.
SERVICE_KEYS = ("output_dir", "overwrite_output_dir", "resume_from_checkpoint")
METHODS = (("full", "Full"), ("lora", "LoRA"), ("qlora4", "QLoRA 4-bit"), ("qlora8", "QLoRA 8-bit"))
# Units shown beside number inputs (every number on the page has its unit).
UNITS: dict[str, str] = {
    "num_train_epochs": "epochs", "per_device_train_batch_size": "rows",
    "gradient_accumulation_steps": "micro-batches", "effective_batch_size": "rows", "seq_length": "tokens",
    "lora_dim": "rank", "validation_split": "fraction", "warmup_ratio": "fraction of steps",
    "max_steps": "steps", "logging_steps": "steps", "eval_steps": "steps", "save_steps": "steps",
    "save_total_limit": "checkpoints", "early_stopping_patience": "evaluations", "max_grad_norm": "norm",
    "max_consecutive_nonfinite_steps": "steps",
}
_HINTS = typing.get_type_hints(TrainConfig)


def _kind(tp: Any) -> tuple[str, list[str]]:
    """The input kind for a type annotation: bool, choice (with its choices), integer, number, list or text."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "choice", [str(c) for c in typing.get_args(tp)]
    if origin is Union or str(origin) == "<class 'types.UnionType'>":
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        literal = [a for a in arms if typing.get_origin(a) is Literal]
        if arms == [bool]:  # true / false / unset (the config decides): a choice, not a checkbox
            return "choice", ["true", "false"]
        if len(arms) == 1:
            return _kind(arms[0])
        if bool in arms and literal:  # e.g. false | true | 'auto'
            return "choice", ["false", "true"] + [str(c) for a in literal for c in typing.get_args(a)]
        if literal:  # e.g. integer or 'auto': a free text box, the API validates
            return "text", []
    if tp is bool:
        return "bool", []
    if tp is int:
        return "integer", []
    if tp is float:
        return "number", []
    if origin is list:
        return "list", []
    return "text", []


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]


def describe(key: str) -> dict[str, Any]:
    """Everything the template needs to draw the input for one config key."""
    f = FIELDS[key]
    kind, choices = _kind(_HINTS[key])
    default = _default(f)
    nullable = type(None) in typing.get_args(_HINTS[key])
    return {"key": key, "kind": kind, "choices": choices, "default": default, "nullable": nullable,
            "default_json": json.dumps(default), "help": f.metadata["help"], "advice": GUIDE_ADVICE.get(key, ""),
            "unit": UNITS.get(key, "")}


def guide_fields() -> list[dict[str, Any]]:
    return [describe(k) for k in GUIDE_ADVICE]


def advanced_fields() -> list[dict[str, Any]]:
    skip = set(GUIDE_ADVICE) | set(TOP_KEYS) | set(SERVICE_KEYS)
    return [describe(k) for k in FIELDS if k not in skip]


def defaults() -> dict[str, Any]:
    """Every key's default, for the page's script (it sends only the guide keys and changed ones)."""
    return {k: _default(f) for k, f in FIELDS.items()}
