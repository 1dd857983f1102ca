"""Does a valid config fit the machine it will run on? Checked before any weight loads, by ``tuneforge train``
(``training/run.py``) and by the task service when a task is validated or submitted — one function for both.

Three refusals, each a ConfigError naming the key:
* ``model``: not a built-in, a local directory, a gallery id or a hub id (``owner/name``) — a misspelled gallery
  id would otherwise go to the hub and fail there, minutes later, with a network message ("did you mean" here);
* ``seq_length`` beyond the model's native context (from the gallery or the local ``config.json``);
* the memory estimate (``models/memory.py``, every row taken ``seq_length`` long) above the device's total memory
  — the GPU's, or host RAM on a CPU — with the planner's cheaper ways that fit. ``memory_check: false`` runs it
  anyway (the estimate assumes every row is ``seq_length`` tokens; short rows need less).

Skipped where the answer is not known here: a hub id not in the gallery (nothing is downloaded to check), a
sharded run (DeepSpeed, FSDP), ``per_device_train_batch_size: auto`` (fitted to memory at the start).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BUILTIN_MODEL, TrainConfig
from .errors import ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
GIB = 1024 ** 3


@dataclass
class ModelFacts:
    """What is known about a model without loading it: its architecture config and native context."""

    hf_config: Any | None
    context: int | None
    extended_context: int | None = None


def model_facts(cfg: TrainConfig) -> ModelFacts:
    """The architecture and context of ``cfg.model``; ConfigError when the name can be nothing at all."""
    from .models import catalog

    name = cfg.model
    if name.startswith("builtin:"):
        from .models.builtin import toy_config, toy_tokenizer

        hf = toy_config(len(toy_tokenizer()))
        return ModelFacts(hf, getattr(hf, "max_position_embeddings", None))
    entry = catalog.find(name)
    if entry is not None:
        return ModelFacts(entry.hf_config(), entry.context_length, entry.extended_context_length)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        from transformers import AutoConfig

        try:
            hf = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError):
            return ModelFacts(None, None)  # loading it will say what is wrong, with its own message
        return ModelFacts(hf, getattr(hf, "max_position_embeddings", None))
    if path.exists() or HUB_ID.match(name):
        return ModelFacts(None, None)  # a directory without config.json, or a hub model: checked when loaded
    hints = catalog.close_matches(name)
    raise ConfigError(f"model={name!r}: not a gallery id, a local model directory or a hub id (owner/name)"
                      + (f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else "")
                      + f" 'tuneforge models list' shows the gallery; {BUILTIN_MODEL!r} runs offline.")


def check_context(cfg: TrainConfig, facts: ModelFacts) -> None:
    if facts.context and cfg.seq_length > facts.context:
        extended = (f" (its card gives {facts.extended_context} tokens with rope scaling, which tuneforge does not "
                    "switch on)") if facts.extended_context and facts.extended_context > facts.context else ""
        raise ConfigError(f"seq_length={cfg.seq_length}: longer than {cfg.model}'s context of {facts.context} "
                          f"tokens{extended}; use seq_length <= {facts.context}.")


def device_total(device_type: str) -> tuple[float, str] | None:
    """(bytes, name) of the memory a run on ``device_type`` has at most: one GPU's, or the host's RAM; None when
    this process cannot see that device (a service whose GPUs only its tasks' processes use)."""
    import torch

    from .models.memory import device_memory

    if device_type == "cuda" and not torch.cuda.is_available():
        return None
    try:
        mem = device_memory(torch.device("cuda" if device_type == "cuda" else "cpu"))
    except (RuntimeError, OSError):
        return None
    return mem.total, mem.name


def _cheaper_ways(cfg: TrainConfig, budget_gib: float, device_type: str) -> str:
    """The planner's methods that fit ``budget_gib`` on one device, as 'QLoRA-4 at batch 2 with gradient
    checkpointing'; empty when none does or the planner cannot tell."""
    try:
        from .gallery.planner import plan

        shown = []
        for method in plan(cfg.model, budget_gib, 1, cfg.training_strategy if cfg.training_strategy in ("sft", "dpo")
                           else "sft", None, cfg.seq_length, device_type).methods:
            if method.fit is not None:
                checkpointing = " with gradient checkpointing" if method.fit.gradient_checkpointing else ""
                shown.append(f"{method.method} at per_device_train_batch_size {method.fit.batch_size}{checkpointing}")
        return "; ".join(shown)
    except Exception:  # noqa: BLE001 - advice only: a planner that cannot plan this model gives none
        return ""


def check_memory(cfg: TrainConfig, facts: ModelFacts, device_type: str) -> None:
    if not cfg.memory_check or facts.hf_config is None or cfg.deepspeed or cfg.fsdp \
            or cfg.per_device_train_batch_size == "auto":
        return
    from .models.memory import ModelShape, estimate

    mixed = "no" if device_type == "cpu" or cfg.mixed_precision == "no" else (
        "fp16" if cfg.mixed_precision == "fp16" else "bf16")
    # 'auto' turns checkpointing on when the run would not fit without it: judge the run it can become
    judged = dataclasses.replace(cfg, gradient_checkpointing=True) if cfg.gradient_checkpointing == "auto" else cfg
    try:
        needed = estimate(judged, ModelShape.from_config(facts.hf_config), device_type, mixed).total
    except Exception:  # noqa: BLE001 - an architecture the estimator cannot read is not refused for it
        return
    device = device_total(device_type)
    if device is None or needed <= device[0]:
        return
    total, name = device
    ways = _cheaper_ways(cfg, total / GIB, device_type)
    raise ConfigError(
        f"memory_check=true: this run is estimated at {needed / GIB:.1f} GiB (every row {cfg.seq_length} tokens, "
        f"per_device_train_batch_size {cfg.per_device_train_batch_size}), and this machine's {name} has "
        f"{total / GIB:.1f} GiB"
        + (f". Ways that fit: {ways}" if ways else "; try QLoRA (load_in_4bit: true), a smaller "
           "per_device_train_batch_size or seq_length, or gradient_checkpointing: true")
        + ". Set memory_check: false to start anyway (shorter rows need less).")


def check_machine(cfg: TrainConfig, device_type: str | None = None) -> None:
    """Refuse (ConfigError) a config that cannot run on this machine; ``device_type`` defaults to the GPU when
    one is visible, else the CPU."""
    if device_type is None:
        import torch

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    facts = model_facts(cfg)
    check_context(cfg, facts)
    check_memory(cfg, facts, device_type)
