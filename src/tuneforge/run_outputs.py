"""Writing what a run leaves behind (the adapter or full model, the tokenizer, the resolved config, a model card)
and the trainable weights of checkpoints and the best snapshot (saved, and loaded back)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig
from .errors import ConfigError
from .rundir import BEST_DIR, CONFIG_FILE, MANIFEST, METRICS_FILE, MODEL_CARD
from .storage import writing

SNAPSHOT_DIR = BEST_DIR  # its files are verified against its manifest before they are loaded


def point_adapter_at_base(model: nn.Module, base_name: str) -> None:
    """One base reference per run: the saved adapter names the base this run trained on (not the base of an
    adapter it started from)."""
    for adapter_config in getattr(model, "peft_config", {}).values():
        adapter_config.base_model_name_or_path = base_name


def save_model(model: nn.Module, tokenizer, directory: Path) -> None:
    """A PEFT adapter directory (LoRA/QLoRA) or a full Hugging Face model directory, plus the tokenizer."""
    with writing(directory, _parameter_bytes(model)):
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(directory), safe_serialization=True)
        tokenizer.save_pretrained(str(directory))


def _parameter_bytes(model: nn.Module) -> int:
    params = [p for p in model.parameters() if p.requires_grad] if hasattr(model, "peft_config") else \
        list(model.parameters())
    return sum(p.numel() * p.element_size() for p in params)


def save_config(cfg: TrainConfig, directory: Path, extra: dict | None = None) -> None:
    data = cfg.to_dict()
    if extra:
        data["_run"] = extra
    path = directory / CONFIG_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path):  # written last (it marks the run finished), through a temporary file
            tmp.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, path: Path) -> None:
    """The trained parameters only (small for LoRA), for the best-model snapshot and checkpoints."""
    state = trainable_state(model)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path, sum(t.numel() * t.element_size() for t in state.values())):
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(tmp))
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a write that failed half-way leaves nothing behind


def verify_against_manifest(path: Path) -> None:
    """A snapshot file is loaded only when its directory's manifest lists it with this size and sha256."""
    manifest = path.parent / MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))["files"][path.name]
        size, digest = int(meta["size"]), str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not listed in a readable {manifest.name}, so it is not trusted. The run directory "
                          "keeps its last complete checkpoint: rerun the same command to resume from it.") from None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    if path.stat().st_size != size or h.hexdigest() != digest:
        raise ConfigError(f"{path}: damaged (it does not match {manifest.name}), not loaded. The run directory keeps "
                          "its last complete checkpoint: rerun the same command to resume from it.")


def load_trainable(model: nn.Module, path: Path) -> None:
    if path.parent.name == SNAPSHOT_DIR:
        verify_against_manifest(path)
    state = load_file(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def write_model_card(directory: Path, cfg: TrainConfig, base_name: str, facts: dict) -> None:
    """README.md of the run: base, method, data, key hyperparameters, final metrics, how to load it."""
    lora = cfg.is_lora
    loading = ("```python\nfrom peft import AutoPeftModelForCausalLM\n"
               "model = AutoPeftModelForCausalLM.from_pretrained("
               f"{str(directory)!r})\n```" if lora else
               "```python\nfrom transformers import AutoModelForCausalLM\n"
               "model = AutoModelForCausalLM.from_pretrained("
               f"{str(directory)!r})\n```")
    hyper = ["learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
             "seq_length", "lr_scheduler_type", "warmup_ratio", "seed"]
    hyper += ["lora_dim", "lora_alpha", "lora_target_modules"] if lora else []
    hyper += ["dpo_beta", "dpo_loss_type"] if cfg.training_strategy == "dpo" else []
    value = lambda k: cfg.resolved_lora_alpha if k == "lora_alpha" else getattr(cfg, k)  # noqa: E731
    rows = "\n".join(f"| `{k}` | `{json.dumps(value(k), ensure_ascii=False)}` |" for k in hyper)
    results = "\n".join(f"- {k}: {v}" for k, v in facts.items()) or "- (no evaluation)"
    validation = cfg.validation_data or (f"{cfg.validation_split:.0%} of the training data"
                                         if cfg.validation_split else "none")
    text = (f"# {directory.name}\n\nTrained with tuneforge: {cfg.training_strategy.upper()}, method **{cfg.method}**, "
            f"on the base model `{cfg.model}` (weights: `{base_name}`).\n\n"
            f"- training data: `{cfg.train_data}`\n- validation data: "
            f"`{validation}`\n\n"
            f"## Hyperparameters\n\n| key | value |\n|---|---|\n{rows}\n\nEvery key: `{CONFIG_FILE}`; "
            f"every logged step and evaluation: `{METRICS_FILE}`.\n\n## Results\n\n{results}\n\n"
            f"## Loading\n\n{loading}\n\nor in a terminal: `tuneforge chat {directory}`.\n")
    with writing(directory / MODEL_CARD):
        (directory / MODEL_CARD).write_text(text, encoding="utf-8")
