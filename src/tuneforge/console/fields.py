"""The new-task form's fields, built from the config's own declarations (``tuneforge.config``: ``FIELDS``, the
keys' types ``KEY_TYPES`` and their ``GROUPS``).

The guide's hyperparameters come first, by their exact key names, each with a one-line piece of advice;
every other key is an "advanced" field whose help is the config's docstring, under its config group's title,
so the form can never drift from what ``tuneforge train`` accepts. The page's script gets the top and guide
keys from here (``form_keys``), not from a copy of its own.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..config import FIELDS, GROUPS, KEY_TYPES, PER_RUN_KEYS, KeyType

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
    values = KEY_TYPES["training_strategy"].choices
    return [{"value": v, "label": STRATEGY_LABELS.get(v, (v, ""))[0], "advice": STRATEGY_LABELS.get(v, (v, ""))[1]}
            for v in values]


# The guide's keys, in the order a user decides them, with advice in one line each.
GUIDE_ADVICE: dict[str, str] = {
    "learning_rate": "AdamW step size. LoRA/QLoRA: about 1e-4 to 2e-4; full-parameter: about 1e-5. "
                     "Lower it if the loss jumps.",
    "num_train_epochs": "Passes over the data: 2 to 10. Stop when the eval loss stops falling.",
    "per_device_train_batch_size": "Rows per device per step: the largest that fits memory (watch the GPU memory "
                                   "chart), or 'auto'.",
    "gradient_accumulation_steps": "Effective batch = batch size × this × devices. Raise it when memory caps the "
                                   "batch size.",
    "seq_length": "Tokens per sample; longer rows are truncated. Take the data set's recommended value.",
    "lora_dim": "LoRA rank, default 32; 0 means full-parameter training.",
    "lora_alpha": "LoRA scaling, usually ½ to 2 × lora_dim; higher = stronger adapter (small data). "
                  "Empty = 2 × lora_dim.",
    "dpo_beta": "DPO β, default 0.1 (typical 0.1 to 0.5): higher keeps the model closer to the reference. DPO only.",
    "load_in_4bit": "QLoRA: load the base model in 4 bit. Least memory, somewhat slower than LoRA.",
    "load_in_8bit": "QLoRA: load the base model in 8 bit.",
    "apply_chat_template": "On: wrap rows in the model's chat template. Off: the data carries its own special tokens.",
    "system_prompt": "System message added to every row that has none (works with the chat template on).",
}
# Chosen through their own controls at the top of the form (strategy, method, model, data).
TOP_KEYS = ("training_strategy", "model", "train_data", "validation_data", "validation_split")
# Units shown beside number inputs (every number on the page has its unit).
UNITS: dict[str, str] = {
    "num_train_epochs": "epochs", "per_device_train_batch_size": "rows",
    "gradient_accumulation_steps": "micro-batches", "effective_batch_size": "rows", "seq_length": "tokens",
    "lora_dim": "rank", "validation_split": "fraction", "warmup_ratio": "fraction of steps",
    "max_steps": "steps", "logging_steps": "steps", "eval_steps": "steps", "save_steps": "steps",
    "save_total_limit": "checkpoints", "early_stopping_patience": "evaluations", "max_grad_norm": "norm",
    "max_consecutive_nonfinite_steps": "steps",
}


def input_kind(ktype: KeyType) -> tuple[str, list[str]]:
    """The input for a key's type (the config reads the annotations): bool, choice (with its choices), integer,
    number, list or text."""
    arms = ktype.arms
    if len(arms) == 1 and arms[0].kind == "bool" and ktype.nullable:  # true / false / unset (the config decides)
        return "choice", ["true", "false"]
    if len(arms) == 1:
        kind = {"bool": "bool", "choice": "choice", "integer": "integer", "number": "number", "strings": "list",
                "numbers": "list"}.get(arms[0].kind, "text")
        return kind, [str(c) for c in ktype.choices]
    if any(a.kind == "bool" for a in arms) and ktype.choices:  # e.g. false | true | 'auto'
        return "choice", ["false", "true"] + [str(c) for c in ktype.choices]
    return "text", []  # e.g. integer or 'auto': a free text box, the API validates


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]


def describe(key: str) -> dict[str, Any]:
    """Everything the template needs to draw the input for one config key."""
    f = FIELDS[key]
    kind, choices = input_kind(KEY_TYPES[key])
    default = _default(f)
    nullable = KEY_TYPES[key].nullable
    return {"key": key, "kind": kind, "choices": choices, "default": default, "nullable": nullable,
            "default_json": json.dumps(default), "help": f.metadata["help"], "advice": GUIDE_ADVICE.get(key, ""),
            "unit": UNITS.get(key, "")}


def guide_fields() -> list[dict[str, Any]]:
    return [describe(k) for k in GUIDE_ADVICE]


def advanced_groups() -> list[dict[str, Any]]:
    """The keys the top and the guide leave, under their config group's title (groups left empty are dropped)."""
    skip = set(GUIDE_ADVICE) | set(TOP_KEYS) | set(PER_RUN_KEYS)  # PER_RUN_KEYS: decided by the task service
    groups = [{"name": g.name, "title": g.title, "fields": [describe(k) for k in g.keys if k not in skip]}
              for g in GROUPS]
    return [g for g in groups if g["fields"]]


def advanced_fields() -> list[dict[str, Any]]:
    return [f for group in advanced_groups() for f in group["fields"]]


def form_keys() -> dict[str, list[str]]:
    """The keys the page's script always sends: the top controls' and the guide's."""
    return {"top": list(TOP_KEYS), "guide": list(GUIDE_ADVICE)}


def defaults() -> dict[str, Any]:
    """Every key's default, for the page's script (it sends only the guide keys and changed ones)."""
    return {k: _default(f) for k, f in FIELDS.items()}
